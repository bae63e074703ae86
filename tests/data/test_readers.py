"""Text readers: a UTF-8 byte-order mark is not part of the first text; unreadable files give one clear line."""

from __future__ import annotations

import pytest

from helpers import deny_reading
from saedetox.data.readers import read_lines, read_prompt_texts, read_texts
from saedetox.errors import SaedetoxError


@pytest.mark.parametrize(
    "name,body,field",
    [
        ("p.txt", "Hello there\nSecond\n", "text"),
        ("p.jsonl", '{"text": "Hello there"}\n{"text": "Second"}\n', "text"),
        ("p.csv", "text\nHello there\nSecond\n", "text"),
        ("rtp.jsonl", '{"prompt": {"text": "Hello there"}}\n{"prompt": {"text": "Second"}}\n', "text"),
    ],
)
def test_a_byte_order_mark_is_dropped(tmp_path, name, body, field):
    path = tmp_path / name
    path.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
    assert read_prompt_texts(path, field) == ["Hello there", "Second"]


def test_unreadable_and_unnameable_files(tmp_path, monkeypatch):
    target = tmp_path / "p.txt"
    target.write_text("Hello\n")
    deny_reading(monkeypatch, target)
    with pytest.raises(SaedetoxError, match=r"Cannot read .*p\.txt: Permission denied\.$"):
        read_lines(target)
    with pytest.raises(SaedetoxError, match=r"Cannot read a{100}… \(300 characters\): File name too long"):
        read_texts("a" * 300)
