"""The CLI: commands work on tiny models, and bad input gives one line and a non-zero exit."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers import run_cli as run
from helpers import tiny_gpt2, write_sae


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    lm = tiny_gpt2()
    lm.model.save_pretrained(root / "model")
    lm.tokenizer.save_pretrained(root / "model")
    write_sae(root / "sae", lm.d_model, hook="blocks.1.hook_resid_pre")
    write_sae(root / "wide", lm.d_model + 4, hook="blocks.1.hook_resid_pre")
    return root


def test_info_with_preflight(world, capsys):
    code, out, err = run(["info", "--model", str(world / "model"), "--sae", str(world / "sae"), "--json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["layers"] == 3 and data["preflight"]["n_tokens"] > 0
    assert "explained_variance" in data["preflight"] and "ce_delta" in data["preflight"]


def test_generate_steered_and_plain(world, capsys, tmp_path):
    base = ["generate", "--model", str(world / "model"), "-p", "The library opens", "-n", "2", "--max-new-tokens", "4"]
    code, out, err = run(base, capsys)
    assert code == 0, err and out.count("\n") == 2
    code, out, err = run(
        base
        + [
            "--sae",
            str(world / "sae"),
            "--features",
            "1,2",
            "--mode",
            "token",
            "--tier",
            "high",
            "--out",
            str(tmp_path / "g.jsonl"),
        ],
        capsys,
    )
    assert code == 0, err
    rows = [json.loads(x) for x in (tmp_path / "g.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and rows[0]["prompt"] == "The library opens"


def test_generate_under_an_attack_records_the_context(world, capsys, tmp_path):
    from saedetox.data.attacks import OVERRIDE

    argv = ["generate", "--model", str(world / "model"), "-p", "The library opens", "--max-new-tokens", "3"]
    code, _, err = run([*argv, "--attack", "override", "--out", str(tmp_path / "a.jsonl")], capsys)
    assert code == 0, err
    row = json.loads((tmp_path / "a.jsonl").read_text().splitlines()[0])
    assert row["attack"] == "override" and row["attacked_prompt"] == OVERRIDE + "The library opens"
    code, _, err = run([*argv, "--attack", "shouting"], capsys)
    assert code == 2 and "shouting" in err


def test_export_then_plain_load(world, capsys, tmp_path):
    code, out, err = run(
        [
            "export",
            "--model",
            str(world / "model"),
            "--sae",
            str(world / "sae"),
            "--features",
            "1,2",
            "--strength",
            "2",
            "--out",
            str(tmp_path / "exp"),
        ],
        capsys,
    )
    assert code == 0, err
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(tmp_path / "exp")


BAD = [
    (["--sae", "gpt2-small-res-j/blocks.6.hook_resid_pre"], "Unknown SAE release"),
    (["--sae", "gpt2-small-res-jb/blocks.66.hook_resid_pre"], "Close matches"),
    (["--sae", "{wide}"], "d_in"),
    (["--sae", "{sae}", "--hook", "blocks.9.hook_resid_pre"], "layers"),
    (["--sae", "{sae}", "--features", "64"], "out of range"),
    (["--sae", "{sae}", "--strength", "nan"], "finite"),
    (["--sae", "{sae}", "--strength", "inf"], "finite"),
    (["--sae", "{sae}", "--mode", "sideways"], "mode"),
    (["--sae", "{trunc}"], "truncated"),
]


@pytest.mark.parametrize("extra,msg", BAD)
def test_bad_steering_input_one_line(world, capsys, extra, msg):
    trunc = world / "trunc"
    if not trunc.exists():
        import shutil

        shutil.copytree(world / "sae", trunc)
        w = trunc / "sae_weights.safetensors"
        w.write_bytes(w.read_bytes()[:100])
    extra = [e.format(wide=world / "wide", sae=world / "sae", trunc=trunc) for e in extra]
    if "--features" not in extra:
        extra += ["--features", "1"]
    code, out, err = run(["generate", "--model", str(world / "model"), "-p", "Hi there"] + extra, capsys)
    assert code == 2, (out, err)
    assert err.startswith("error:") and msg in err
    assert err.strip().count("\n") == 0 and "Traceback" not in err


@pytest.mark.parametrize(
    "argv,msg",
    [
        (["generate", "--model", "some-org/not-a-model-xyz", "-p", "hi"], "local directory"),
        (["generate", "--model", "{model}", "-p", "   "], "Empty prompt"),
        (["generate", "--model", "{model}"], "at least one --prompt"),
        (["generate", "--model", "{model}", "--prompts", "{missing}"], "not found"),
        (["info", "--model", "/nonexistent/dir"], "does not exist"),
        (["export", "--model", "{model}", "--out", "{tmp}"], "--sae"),
    ],
)
def test_bad_input_one_line(world, capsys, tmp_path, argv, msg):
    argv = [a.format(model=world / "model", missing=tmp_path / "none.txt", tmp=tmp_path / "o") for a in argv]
    code, out, err = run(argv, capsys)
    assert code == 2 and msg in err and err.strip().count("\n") == 0


def test_entry_point_subprocess_has_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "saedetox.cli", "info", "--model", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error:") and "Traceback" not in proc.stderr


def test_demo_without_datasets_gives_one_line(tmp_path, capsys, monkeypatch):
    import saedetox.data.location as dd

    monkeypatch.setattr(dd, "PROJECT_ROOT", tmp_path / "nowhere" / "project")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SAEDETOX_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    code, out, err = run(["demo", "--out", str(tmp_path / "demo")], capsys)
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: No dataset directory found"), err
    assert "Traceback" not in err + out


def test_data_env_var_must_be_a_directory(tmp_path, monkeypatch):
    from saedetox.data.location import resolve_data_dir
    from saedetox.errors import SaedetoxError

    monkeypatch.setenv("SAEDETOX_DATA", str(tmp_path / "missing"))
    with pytest.raises(SaedetoxError, match="SAEDETOX_DATA"):
        resolve_data_dir()


def test_generate_with_a_method_samples_what_the_api_samples_under_it(world, capsys, tmp_path):
    from saedetox.eval.sampler.sampling import sample
    from saedetox.methods.prompt import POLITE_PREFIX
    from saedetox.model.load import load_model

    argv = ["generate", "--model", str(world / "model"), "-p", "The library opens", "--max-new-tokens", "4"]
    code, _, err = run([*argv, "--method", "prompt", "--greedy", "--out", tmp_path / "p.jsonl"], capsys)
    assert code == 0, err
    (row,) = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    lm = load_model(str(world / "model"))
    (expected,) = sample(lm, [POLITE_PREFIX + "The library opens"], max_new_tokens=4, do_sample=False)
    assert row["prompt"] == "The library opens" and row["continuation"] == expected[0].text
    code, _, err = run([*argv, "--method", "meandiff", "--train-judge", "probe"], capsys)
    assert code == 2 and "learns from no judge" in err and "Traceback" not in err
    code, _, err = run([*argv, "--method", "rectification", "--train-judge", "nope"], capsys)
    assert code == 2 and "Unknown training judge 'nope'" in err and len(err.strip().splitlines()) == 1
