"""Bad input around files and modes: one ``error:`` line, exit 2, nothing left behind (no lock file, no
temporary file, no empty folder); and the small adjustments that are said out loud (one ``warning:`` line).

Unreadable files and full disks are simulated (the suite runs as root, which reads every file): the
read or the write of that one path raises the ``OSError`` the system would.
"""

from __future__ import annotations

import errno
import json
import pathlib
import re
import shutil

import pytest

from helpers import deny_reading, run_cli, snapshot, tiny_gpt2, write_sae


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = tmp_path_factory.mktemp("files")
    m = tiny_gpt2()
    m.model.save_pretrained(w / "model")
    m.tokenizer.save_pretrained(w / "model")
    write_sae(w / "sae", m.d_model, d_sae=64, hook="blocks.1.hook_resid_pre")
    (w / "full").mkdir()
    (w / "full" / "notes.txt").write_text("mine")
    (w / "prompts.txt").write_text("Hello there\nThe weather\n")
    (w / "g.jsonl").write_text('{"old": 1}\n')
    return w


GEN = ["generate", "--model", "{w}/model", "-p", "Hello there", "--max-new-tokens", "3"]
SAE = ["--sae", "{w}/sae", "--features", "1,2"]
EXPORT = ["export", "--model", "{w}/model"] + SAE + ["--strength", "1"]
LONG_LIST = ",".join(str(i) for i in range(1000, 1100))  # 499 characters: too long for a file name


def refused(world, tmp_path, capsys, argv, msg) -> str:
    argv = [a.format(w=world, t=tmp_path) for a in argv]
    before = snapshot(world, tmp_path)
    code, out, err = run_cli(argv, capsys)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, (code, out, err)
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err, err
    assert re.search(msg, lines[0]), lines[0]
    assert not re.match(r"error: \w+(Error|Exception): ", lines[0]), lines[0]
    assert snapshot(world, tmp_path) == before, "bad input left files behind or changed existing ones"
    return lines[0]


CASES = [
    # a refusal inside the output lock leaves no lock file (nor the folders made for it)
    ("export-target-not-empty", EXPORT + ["--out", "{w}/full"], "not empty.*--overwrite"),
    ("generate-nan-logits-out", GEN + SAE + ["--strength", "1e39", "--out", "{t}/new/g.jsonl"], "NaN or infinite"),
    # a missing data folder leaves no cache/ (nor the model folder)
    ("train-lm-data-dir-missing", ["train-lm", "--out", "{t}/lm", "--data-dir", "{t}/nodata"], "not a directory"),
    # a latent list too long to be a file name is read as a latent list
    ("features-long-list", GEN + ["--sae", "{w}/sae", "--features", LONG_LIST], "out of range"),
    (
        "features-long-list-adaptive",
        GEN + ["--sae", "{w}/sae", "--mode", "adaptive", "--features", LONG_LIST],
        "detector",
    ),
    (
        "features-long-list-conditional",
        GEN + ["--sae", "{w}/sae", "--mode", "conditional", "--features", LONG_LIST],
        "range",
    ),
    # options the chosen mode would ignore
    ("threshold-constant", GEN + SAE + ["--threshold", "0.5"], "--threshold is read only in conditional and token"),
    ("threshold-adaptive", GEN + SAE + ["--mode", "adaptive", "--threshold", "0.5"], "mode 'adaptive' would ignore"),
    ("threshold-clamp", GEN + SAE + ["--mode", "clamp", "--threshold", "1"], "--threshold"),
    ("clamp-value-adaptive", GEN + SAE + ["--mode", "adaptive", "--clamp-value", "2"], "--clamp-value is read only"),
    ("clamp-value-constant", GEN + SAE + ["--clamp-value", "2"], "--clamp-value"),
    ("clamp-value-token", GEN + SAE + ["--mode", "token", "--clamp-value", "2"], "--clamp-value"),
    # an existing output file is kept unless --overwrite
    ("generate-out-exists", GEN + ["--out", "{w}/g.jsonl"], "exists; pass --overwrite"),
    ("discover-max-pairs-1", ["discover", "--sae", "{w}/sae", "--max-pairs", "1", "--out", "{t}/f.json"], "max-pairs"),
]


@pytest.mark.parametrize("name,argv,msg", CASES, ids=[c[0] for c in CASES])
def test_refused_and_nothing_left(world, tmp_path, capsys, name, argv, msg):
    refused(world, tmp_path, capsys, argv, msg)
    assert not any(p.name.endswith(".lock") for p in tmp_path.rglob("*")) and not (world / ".full.lock").exists()


def test_unreadable_prompt_file(world, tmp_path, capsys, monkeypatch):
    target = world / "prompts.txt"
    deny_reading(monkeypatch, target)
    line = refused(world, tmp_path, capsys, GEN + ["--prompts", str(target)], "Permission denied")
    assert str(target) in line


def test_full_disk_names_the_path_and_the_space(world, tmp_path, capsys, monkeypatch):
    def no_space(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pathlib.Path, "write_bytes", no_space)
    line = refused(world, tmp_path, capsys, GEN + ["--out", "{t}/g.jsonl"], r"No space left to write .*g\.jsonl")
    assert re.search(r"\d+ [KMGT]?B free there, about \d+ B needed", line), line


def test_full_disk_during_export(world, tmp_path, capsys, monkeypatch):
    import transformers.modeling_utils as mu

    def no_space(*a, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(mu, "safe_save_file", no_space)
    line = refused(world, tmp_path, capsys, EXPORT + ["--out", "{t}/e"], r"No space left to write .*/e: ")
    assert re.search(r"about \d+ KB needed", line), line


def test_overwrite_replaces_the_output_file(world, tmp_path, capsys):
    out = tmp_path / "g.jsonl"
    shutil.copy(world / "g.jsonl", out)
    code, _, err = run_cli([a.format(w=world) for a in GEN] + ["--out", out, "--overwrite"], capsys)
    assert code == 0, err
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["prompt"] for r in rows] == ["Hello there"]


@pytest.fixture
def loud(monkeypatch):
    monkeypatch.delenv("SAEDETOX_QUIET", raising=False)


def test_prompts_cut_to_the_context_say_so(world, capsys, loud):
    long = "the weather is nice today and " * 40  # far beyond the tiny model's 128 positions
    code, _, err = run_cli(
        ["generate", "--model", world / "model", "-p", long, "-p", "Hi", "--max-new-tokens", 3], capsys
    )
    warnings = [ln for ln in err.splitlines() if ln.startswith("warning:")]
    assert code == 0 and len(warnings) == 1, err
    assert "1 of 2 prompt(s) are longer than the 125 tokens" in warnings[0]


def test_more_prompts_asked_than_the_set_holds_says_so(world, tmp_path, capsys, loud):
    argv = ["evaluate", "--model", world / "model", "--prompts", world / "prompts.txt", "--n-prompts", "50"]
    argv += ["--samples", "1", "--max-new-tokens", "2", "--clean-texts", "0", "--judges", "profanity"]
    code, _, err = run_cli(argv + ["--out", tmp_path / "run"], capsys)
    warnings = [ln for ln in err.splitlines() if ln.startswith("warning:")]
    assert code == 0 and warnings == [
        f"warning: 50 prompts asked for, but {world / 'prompts.txt'} holds 2; using all 2."
    ]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["n_prompts"] == 2


def test_a_byte_order_mark_is_not_part_of_the_first_prompt(world, tmp_path, capsys):
    bom = tmp_path / "bom.txt"
    bom.write_bytes(b"\xef\xbb\xbfHello there\nThe weather\n")
    code, out, err = run_cli(["generate", "--model", world / "model", "--prompts", bom, "--max-new-tokens", 2], capsys)
    assert code == 0, err
    assert [ln.split("\u2502")[0] for ln in out.splitlines()] == ["Hello there", "The weather"]


def test_a_single_push_level_in_a_sweep_yaml_is_a_one_level_list(world, tmp_path, capsys):
    raw = {"model": str(world / "model"), "sae": str(world / "sae"), "features": [1, 2]}
    raw["evaluation"] = {"n_prompts": 2, "samples": 2, "max_new_tokens": 3, "clean_texts": 0, "judges": ["profanity"]}
    raw["runs"] = [{"method": "sae", "modes": "constant", "push": 0.2}]
    (tmp_path / "s.yaml").write_text(json.dumps(raw))
    code, out, err = run_cli(["sweep", tmp_path / "s.yaml", "--dry-run"], capsys)
    assert code == 0, err
    assert "sae-constant-p0.2" in out
