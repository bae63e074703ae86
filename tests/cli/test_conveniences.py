"""Small things a user trips on: --version, steering options imply the SAE method,
``generate`` reads RTP JSONL as ``evaluate`` does, and library errors shown with the command's flags."""

from __future__ import annotations

import json

import pytest

from helpers import run_cli, tiny_gpt2, write_sae
from saedetox.cli.app import cli_words
from saedetox.version import __version__


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = tmp_path_factory.mktemp("conv")
    lm = tiny_gpt2()
    lm.model.save_pretrained(w / "model")
    lm.tokenizer.save_pretrained(w / "model")
    write_sae(w / "sae", lm.d_model, d_sae=64, hook="blocks.1.hook_resid_pre")
    rows = [
        {"filename": "a", "begin": 1, "prompt": {"text": "The weather today", "toxicity": 0.1}},
        {"filename": "b", "begin": 2, "prompt": {"text": "My neighbour said", "toxicity": 0.7}},
    ]
    (w / "rtp.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return w


def test_version(capsys):
    code, out, _ = run_cli(["--version"], capsys)
    assert code == 0 and out.strip() == f"saedetox {__version__}"


def test_steering_options_imply_the_sae_method(world, tmp_path, capsys):
    argv = ["evaluate", "--model", str(world / "model"), "--out", str(tmp_path / "run"), "--n-prompts", "2"]
    argv += ["--samples", "2", "--max-new-tokens", "3", "--clean-texts", "0", "--judges", "profanity"]
    code, _, err = run_cli(argv + ["--sae", str(world / "sae"), "--features", "1,2", "--tier", "medium"], capsys)
    assert code == 0, err
    config = json.loads((tmp_path / "run" / "metrics.json").read_text())["config"]
    assert config["method"] == "sae" and config["tier"] == "medium" and config["latents"] == [1, 2]
    code, _, err = run_cli(argv + ["--method", "none", "--sae", str(world / "sae"), "--features", "1"], capsys)
    assert code == 2 and "--method none takes no steering options" in err


def test_generate_reads_rtp_jsonl_as_evaluate_does(world, tmp_path, capsys):
    out = tmp_path / "g.jsonl"
    argv = ["generate", "--model", str(world / "model"), "--prompts", str(world / "rtp.jsonl")]
    code, _, err = run_cli(argv + ["--max-new-tokens", "2", "--out", str(out)], capsys)
    assert code == 0, err
    prompts = [json.loads(line)["prompt"] for line in out.read_text().splitlines()]
    assert prompts == ["The weather today", "My neighbour said"]


def test_library_words_become_the_commands_flags(world, capsys):
    code, _, err = run_cli(["evaluate", "--model", str(world / "model"), "--out", "x", "--top-p", "2"], capsys)
    assert code == 2 and err.startswith("error: --top-p must be in (0, 1]")
    assert cli_words("data_dir /x is not a directory.", ["discover"]) == "--data-dir /x is not a directory."
    assert cli_words("data_dir /x", ["info"]) == "data_dir /x"  # info has no --data-dir: left as it is
    assert cli_words("top_p is off", ["nosuchcommand"]) == "top_p is off"
