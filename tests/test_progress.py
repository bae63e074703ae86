"""Progress goes through one switch: silent by default, bars for the CLI, or the caller's callback."""

from __future__ import annotations

import pytest

from saedetox import progress
from saedetox.progress import note, on_progress, progress_bar


@pytest.fixture(autouse=True)
def _loud(monkeypatch):
    monkeypatch.delenv("SAEDETOX_QUIET", raising=False)
    yield
    on_progress(None)


def run_steps(n: int = 3) -> None:
    with progress_bar("work", total=n) as bar:
        for _ in range(n):
            bar.advance(1)
    note("a note")


def test_the_library_is_quiet_by_default(capfd):
    on_progress(None)
    run_steps()
    assert capfd.readouterr() == ("", "")


def test_a_callback_gets_every_step_and_the_notes(capfd):
    seen = []
    on_progress(lambda desc, done, total: seen.append((desc, done, total)))
    run_steps()
    assert seen == [("work", 0, 3), ("work", 1, 3), ("work", 2, 3), ("work", 3, 3), ("a note", 0, 0)]
    assert capfd.readouterr() == ("", "")


def test_terminal_prints_plain_lines_off_a_tty(capfd):
    on_progress("terminal")
    run_steps(2)
    err = capfd.readouterr().err
    assert "work: 2/2 (100%)" in err and "a note" in err


def test_quiet_environment_silences_everything(capfd, monkeypatch):
    monkeypatch.setenv("SAEDETOX_QUIET", "1")
    on_progress("terminal")
    run_steps()
    assert capfd.readouterr() == ("", "")
    with pytest.raises(TypeError):
        progress.on_progress(3)  # type: ignore[arg-type]


def test_a_warning_is_one_line_on_stderr_once_and_quiet_silences_it(capfd, monkeypatch):
    from saedetox.progress import warn

    on_progress(None)  # warnings are not progress: they show without the CLI's switch
    warn("prompts were cut")
    warn("prompts were cut")
    assert capfd.readouterr() == ("", "warning: prompts were cut\n")
    seen = []
    on_progress(lambda *a: seen.append(a))
    warn("prompts were cut")
    assert seen == [("warning: prompts were cut", 0, 0)]
    monkeypatch.setenv("SAEDETOX_QUIET", "1")
    on_progress(None)
    warn("another")
    assert capfd.readouterr() == ("", "")
