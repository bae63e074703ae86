"""Every command refuses bad input the same way: exit status 2, exactly one ``error:`` line naming the
problem, no traceback, and nothing written (no file or folder appears, nothing existing changes).

The table runs the CLI in-process (``saedetox.cli.app.main``) on a tiny world built once: a
random-weight GPT-2 saved to disk, SAEs (good, wider dictionary, another SAE of the same width,
another model width, NaN weights, truncated), features files, sweep YAMLs and an existing run folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from helpers import run_cli, snapshot, tiny_gpt2, write_sae
from saedetox.cli.app import main

GEMMA_SAE = "gemma-scope-2b-pt-res-canonical/layer_12/width_16k/canonical"
TINY_EVAL = {"n_prompts": 2, "samples": 2, "max_new_tokens": 3, "clean_texts": 0, "judges": ["profanity"]}


def _yaml(path: Path, obj: object) -> str:
    path.write_text(json.dumps(obj))  # JSON is YAML
    return str(path)


def _sweep(w: Path, name: str, **over: object) -> str:
    raw = {"model": str(w / "model"), "sae": str(w / "sae"), "features": [1, 2], "evaluation": dict(TINY_EVAL)}
    raw["runs"] = [{"method": "none"}, {"method": "sae", "tiers": ["low"]}]
    for k, v in over.items():
        if k == "evaluation":
            raw["evaluation"].update(v)  # type: ignore[union-attr]
        else:
            raw[k] = v
    return _yaml(w / name, raw)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = tmp_path_factory.mktemp("bad")
    lm = tiny_gpt2()
    for name, seed in (("model", 0), ("model2", 1)):
        m = tiny_gpt2(seed=seed)
        m.model.save_pretrained(w / name)
        m.tokenizer.save_pretrained(w / name)
    shutil.copytree(w / "model", w / "trunc_model")
    wf = w / "trunc_model" / "model.safetensors"
    wf.write_bytes(wf.read_bytes()[: wf.stat().st_size // 2])
    hook = "blocks.1.hook_resid_pre"
    write_sae(w / "sae", lm.d_model, d_sae=64, hook=hook)
    write_sae(w / "sae_other", lm.d_model, d_sae=64, hook=hook, seed=1)
    write_sae(w / "sae128", lm.d_model, d_sae=128, hook=hook)
    write_sae(w / "wide", lm.d_model + 4, d_sae=64, hook=hook)
    write_sae(w / "sae_l9", lm.d_model, d_sae=64, hook="blocks.9.hook_resid_pre")
    write_sae(w / "nan_sae", lm.d_model, d_sae=64, hook=hook)
    weights = w / "nan_sae" / "sae_weights.safetensors"
    tensors = load_file(weights)
    tensors["W_dec"][3, 0] = float("nan")
    save_file(tensors, weights)
    shutil.copytree(w / "sae", w / "trunc_sae")
    tw = w / "trunc_sae" / "sae_weights.safetensors"
    tw.write_bytes(tw.read_bytes()[:100])
    (w / "feat_nonint.json").write_text(json.dumps({"selected": [1, "x"]}))
    (w / "feat128.json").write_text(json.dumps({"sae": str(w / "sae128"), "d_sae": 128, "selected": [1, 2]}))
    (w / "feat_other.json").write_text(json.dumps({"sae": str(w / "sae_other"), "d_sae": 64, "selected": [1]}))
    (w / "afile").write_text("not a folder\n")
    (w / "binary.txt").write_bytes(b"\xff\xfe\x00bad")
    (w / "orphan").mkdir()
    (w / "orphan" / "metrics.json").write_text("{}")
    (w / "notjson.json").write_text("{")
    (w / "list.yaml").write_text("- model: reference\n- runs: []\n")
    (w / "latin1.yaml").write_bytes("model: r\xe9f\xe9rence\n".encode("latin-1"))
    (w / "broken.yaml").write_text("runs: [")
    (w / "empty.yaml").write_text("")
    _sweep(w, "zero.yaml", evaluation={"samples": 0})
    _sweep(w, "nojudge.yaml", evaluation={"judges": []})
    _sweep(w, "noprimary.yaml", comparison={"primary": "sae-conditional"})
    _sweep(w, "cmpjudge.yaml", comparison={"judge": "detoxify-original"})
    _sweep(w, "nocap.yaml", evaluation={"capability": ["nosuch"]})
    _sweep(w, "unknownkey.yaml", colour="blue")
    _sweep(w, "gpt2gemma.yaml", model="gpt2", sae=GEMMA_SAE)
    _sweep(w, "refreg.yaml", model="reference", sae="gpt2-small-res-jb/blocks.6.hook_resid_pre")
    _sweep(w, "hook9.yaml", hook="blocks.9.hook_resid_pre")
    _sweep(w, "dinwide.yaml", sae=str(w / "wide"))
    _sweep(w, "featstr.yaml", features=[1, "a"])
    _sweep(w, "featnonint.yaml", features=str(w / "feat_nonint.json"))
    _sweep(w, "feat128.yaml", features=str(w / "feat128.json"))
    _sweep(w, "mode.yaml", runs=[{"method": "sae", "modes": ["sideways"]}])
    _sweep(w, "tier.yaml", runs=[{"method": "sae", "tiers": ["extreme"]}])
    _sweep(w, "overwrite.yaml", overwrite=3)
    _sweep(w, "stale.yaml", evaluation={"clean_texts": 1})
    _sweep(w, "topp.yaml", evaluation={"top_p": 0})
    # an existing run, and a sweep folder holding it, for the stale-settings cases
    base = ["evaluate", "--model", str(w / "model"), "--n-prompts", "2", "--samples", "2", "--max-new-tokens", "3"]
    base += ["--clean-texts", "0", "--judges", "profanity", "--batch-size", "4"]
    main(base + ["--out", str(w / "done")])
    (w / "sweepdir" / "runs").mkdir(parents=True)
    shutil.copytree(w / "done", w / "sweepdir" / "runs" / "none")
    return w


EV = ["evaluate", "--model", "{w}/model", "--out", "{t}/run", "--n-prompts", "2", "--samples", "2"]
EV += ["--max-new-tokens", "3", "--clean-texts", "0", "--judges", "profanity"]
DONE = ["evaluate", "--model", "{w}/model", "--out", "{w}/done", "--n-prompts", "2", "--samples", "2"]
DONE += ["--max-new-tokens", "3", "--clean-texts", "0", "--judges", "profanity", "--batch-size", "4"]
GEN = ["generate", "--model", "{w}/model", "-p", "Hello there", "--max-new-tokens", "3"]
SAE = ["--sae", "{w}/sae", "--features", "1,2"]

CASES = [
    # usage errors
    ("unknown-option", ["evaluate", "--bogus"], "No such option"),
    ("bad-type", ["evaluate", "--out", "{t}/r", "--samples", "abc"], "valid integer"),
    ("unknown-command", ["nosuch"], "No such command"),
    ("missing-option", ["evaluate"], "--out"),
    ("missing-argument", ["sweep"], "Missing argument 'config'"),
    ("option-needs-value", ["generate", "--n-samples"], "--n-samples"),
    ("report-no-runs", ["report"], "Missing argument 'runs'"),
    ("extra-argument", ["info", "--json", "extra"], "extra"),
    # evaluate: the protocol's settings, before any model is loaded
    ("samples-0", EV + ["--samples", "0"], "samples"),
    ("max-new-tokens-0", EV + ["--max-new-tokens", "0"], "--max-new-tokens"),
    ("top-p-0", EV + ["--top-p", "0"], "--top-p"),
    ("top-p-1.5", EV + ["--top-p", "1.5"], "--top-p"),
    ("top-p-nan", EV + ["--top-p", "nan"], "--top-p"),
    ("temperature-0", EV + ["--temperature", "0"], "temperature"),
    ("temperature-negative", EV + ["--temperature", "-1"], "temperature"),
    ("temperature-inf", EV + ["--temperature", "inf"], "temperature"),
    ("clean-texts-negative", EV + ["--clean-texts", "-5"], "--clean-texts"),
    ("n-prompts-negative", EV + ["--n-prompts", "-1"], "--n-prompts"),
    ("batch-size-0", EV + ["--batch-size", "0"], "--batch-size"),
    ("seed-negative", EV + ["--seed", "-1"], "seed"),
    ("judges-empty", EV + ["--judges", ","], "No judges"),
    ("judge-unknown", EV + ["--judges", "probe,nosuch"], "Unknown judge"),
    ("judge-twice", EV + ["--judges", "probe,probe"], "twice"),
    ("judge-unavailable", EV + ["--judges", "perspective"], "API key"),
    ("capability-unknown", EV + ["--capability", "nosuch"], "Unknown capability task"),
    ("capability-limit-0", EV + ["--capability", "blimp", "--capability-limit", "0"], "--capability-limit"),
    ("method-unknown", EV + ["--method", "magic"], "'magic' is not one of 'none', 'sae'"),
    ("baseline-tier-unknown", EV + ["--method", "meandiff", "--tier", "extreme"], "Unknown tier"),
    ("prompts-missing", EV + ["--prompts", "{t}/none.txt"], "not found"),
    ("prompts-not-utf8", EV + ["--prompts", "{w}/binary.txt"], "binary.txt"),
    ("out-is-a-file", EV + ["--out", "{w}/afile"], "is a file"),
    ("out-under-a-file", EV + ["--out", "{w}/afile/run"], "is a file"),
    ("out-read-only-location", EV + ["--out", "/proc/saedetox-test/run"], "not writable"),
    ("out-holds-foreign-results", EV + ["--out", "{w}/orphan"], "no config.json"),
    ("stale-clean-texts", DONE + ["--clean-texts", "1"], "clean_texts=0, now 1"),
    ("stale-samples", DONE + ["--samples", "3"], "samples=2, now 3"),
    ("stale-top-p", DONE + ["--top-p", "0.5"], "top_p=0.9, now 0.5"),
    ("stale-seed", DONE + ["--seed", "1"], "seed=0, now 1"),
    ("stale-batch-size", DONE + ["--batch-size", "2"], "batch_size=4, now 2"),
    ("stale-capability", DONE + ["--capability", "blimp"], "capability"),
    ("stale-model", DONE + ["--model", "{w}/model2"], "model="),
    ("stale-method", DONE + ["--method", "prompt"], "method=none, now prompt"),
    # evaluate: steering input
    ("strength-nan", EV + ["--method", "sae"] + SAE + ["--strength", "nan"], "finite"),
    ("mode-unknown", EV + ["--method", "sae"] + SAE + ["--mode", "sideways"], "mode"),
    ("positions-unknown", EV + ["--method", "sae"] + SAE + ["--positions", "odd"], "position"),
    ("threshold-not-a-number", EV + ["--method", "sae"] + SAE + ["--threshold", "abc"], "--threshold"),
    ("sae-missing", EV + ["--method", "sae", "--sae", "{t}/nosae", "--features", "1"], "does not exist"),
    ("sae-nan-weights", EV + ["--method", "sae", "--sae", "{w}/nan_sae", "--features", "1"], "NaN"),
    ("sae-truncated", EV + ["--method", "sae", "--sae", "{w}/trunc_sae", "--features", "1"], "truncated"),
    ("sae-other-width-model", EV + ["--method", "sae", "--sae", "{w}/wide", "--features", "1"], "d_in"),
    ("latent-out-of-range", EV + ["--method", "sae", "--sae", "{w}/sae", "--features", "64"], "out of range"),
    ("features-non-integer", EV + ["--method", "sae", "--sae", "{w}/sae", "--features", "{w}/feat_nonint.json"], "'x'"),
    (
        "features-other-width",
        EV + ["--method", "sae", "--sae", "{w}/sae", "--features", "{w}/feat128.json"],
        "d_sae 128",
    ),
    (
        "features-other-sae",
        EV + ["--method", "sae", "--sae", "{w}/sae", "--features", "{w}/feat_other.json"],
        "sae_other",
    ),
    ("features-not-json", EV + ["--method", "sae", "--sae", "{w}/sae", "--features", "{w}/notjson.json"], "JSON"),
    ("model-missing", EV + ["--model", "{t}/nomodel"], "does not exist"),
    ("model-not-hf", EV + ["--model", "{w}/sae"], "config.json"),
    ("model-truncated-shard", EV + ["--model", "{w}/trunc_model"], "truncated"),
    ("logits-nan-strength", EV + ["--method", "sae"] + SAE + ["--strength", "1e39"], "NaN or infinite"),
    ("logits-inf-temperature", EV + ["--temperature", "1e-45"], "NaN or infinite"),
    # generate
    ("generate-n-0", GEN + ["-n", "0"], "--n-samples"),
    ("generate-top-p", GEN + ["--top-p", "2"], "--top-p"),
    ("generate-temperature", GEN + ["--temperature", "0"], "temperature"),
    ("generate-seed", GEN + ["--seed", "-1"], "seed"),
    ("generate-out-is-a-folder", GEN + ["--out", "{w}/orphan"], "is a folder"),
    ("generate-out-under-a-file", GEN + ["--out", "{w}/afile/g.jsonl"], "is a file"),
    ("generate-out-read-only", GEN + ["--out", "/proc/saedetox-test.jsonl"], "not writable"),
    ("generate-empty-prompt", ["generate", "--model", "{w}/model", "-p", "  "], "Empty prompt"),
    ("generate-features-text", GEN + ["--sae", "{w}/sae", "--features", "1,x"], "comma-separated"),
    ("generate-features-negative", GEN + ["--sae", "{w}/sae", "--features=-1"], "≥ 0"),
    ("generate-prompts-missing", GEN + ["--prompts", "{t}/none.txt"], "not found"),
    # sweep
    ("sweep-missing", ["sweep", "{t}/none.yaml", "--dry-run"], "not found"),
    ("sweep-folder", ["sweep", "{w}", "--dry-run"], "is a folder"),
    ("sweep-list-yaml", ["sweep", "{w}/list.yaml", "--dry-run"], "mapping"),
    ("sweep-not-utf8", ["sweep", "{w}/latin1.yaml", "--dry-run"], "UTF-8"),
    ("sweep-broken-yaml", ["sweep", "{w}/broken.yaml", "--dry-run"], "not valid YAML"),
    ("sweep-empty", ["sweep", "{w}/empty.yaml", "--dry-run"], "empty"),
    ("sweep-samples-0-dry", ["sweep", "{w}/zero.yaml", "--dry-run"], "samples"),
    ("sweep-samples-0-real", ["sweep", "{w}/zero.yaml", "--out", "{t}/s"], "samples"),
    ("sweep-top-p-real", ["sweep", "{w}/topp.yaml", "--out", "{t}/s"], "top_p"),
    ("sweep-no-judges", ["sweep", "{w}/nojudge.yaml", "--dry-run"], "No judges"),
    (
        "sweep-primary-no-curve",
        ["sweep", "{w}/noprimary.yaml", "--dry-run"],
        "names no curve of this sweep: use one of sae",
    ),
    ("sweep-primary-no-curve-real", ["sweep", "{w}/noprimary.yaml", "--out", "{t}/s"], "names no curve"),
    ("sweep-comparison-judge", ["sweep", "{w}/cmpjudge.yaml", "--dry-run"], "not among the evaluation's judges"),
    ("sweep-capability", ["sweep", "{w}/nocap.yaml", "--dry-run"], "Unknown capability task"),
    ("sweep-unknown-key", ["sweep", "{w}/unknownkey.yaml", "--dry-run"], "Unknown key"),
    ("sweep-gpt2-gemma-sae", ["sweep", "{w}/gpt2gemma.yaml", "--dry-run"], "trained on gemma-2-2b"),
    ("sweep-reference-registry-sae", ["sweep", "{w}/refreg.yaml", "--dry-run"], "not on the reference model"),
    ("sweep-hook-model-lacks", ["sweep", "{w}/hook9.yaml", "--dry-run"], "names layer 9"),
    ("sweep-d-in-mismatch", ["sweep", "{w}/dinwide.yaml", "--dry-run"], "d_in 36"),
    ("sweep-features-not-ints", ["sweep", "{w}/featstr.yaml", "--dry-run"], "features must be"),
    ("sweep-features-file-non-int", ["sweep", "{w}/featnonint.yaml", "--dry-run"], "'x'"),
    ("sweep-features-other-sae", ["sweep", "{w}/feat128.yaml", "--dry-run"], "d_sae 128"),
    ("sweep-mode", ["sweep", "{w}/mode.yaml", "--dry-run"], "Unknown mode"),
    ("sweep-tier", ["sweep", "{w}/tier.yaml", "--dry-run"], "Unknown tier"),
    ("sweep-overwrite-type", ["sweep", "{w}/overwrite.yaml", "--dry-run"], "overwrite"),
    ("sweep-out-is-a-file", ["sweep", "{w}/stale.yaml", "--out", "{w}/afile"], "is a file"),
    ("sweep-stale-run", ["sweep", "{w}/stale.yaml", "--out", "{w}/sweepdir"], "clean_texts=0, now 1"),
    # report
    ("report-baseline-unknown", ["report", "{w}/done", "--baseline", "nosuch", "--out", "{t}/r.html"], "nosuch"),
    ("report-missing", ["report", "{t}/none.json", "--out", "{t}/r.html"], "not found"),
    ("report-not-json", ["report", "{w}/notjson.json", "--out", "{t}/r.html"], "notjson.json"),
    ("report-out-is-a-folder", ["report", "{w}/done", "--out", "{w}/orphan"], "is a folder"),
    # discover, export, info, train
    (
        "discover-k-0",
        ["discover", "--model", "{w}/model", "--sae", "{w}/sae", "--k", "0", "--out", "{t}/f.json"],
        "--k",
    ),
    ("discover-method", ["discover", "--sae", "{w}/sae", "--method", "nosuch", "--out", "{t}/f.json"], "nosuch"),
    ("discover-min-auroc", ["discover", "--sae", "{w}/sae", "--min-auroc", "2", "--out", "{t}/f.json"], "min-auroc"),
    ("discover-out-folder", ["discover", "--sae", "{w}/sae", "--out", "{w}/orphan"], "is a folder"),
    ("export-out-is-a-file", ["export", "--model", "{w}/model"] + SAE + ["--out", "{w}/afile"], "is a file"),
    ("export-no-sae", ["export", "--model", "{w}/model", "--out", "{t}/e"], "--sae"),
    ("serve-bad-tier", ["serve", "--model", "{w}/model"] + SAE + ["--levels", "off,x=bogus"], "Unknown tier 'bogus'"),
    ("serve-level-twice", ["serve", "--model", "{w}/model"] + SAE + ["--levels", "off,low,low"], "named twice"),
    ("serve-level-name", ["serve", "--model", "{w}/model"] + SAE + ["--levels", "off,no good"], "Level name"),
    ("serve-tier-flag", ["serve", "--model", "{w}/model"] + SAE + ["--tier", "low"], "--levels"),
    ("info-model-missing", ["info", "--model", "{t}/nomodel"], "does not exist"),
    ("info-model-truncated", ["info", "--model", "{w}/trunc_model"], "truncated"),
    ("info-sae-nan", ["info", "--model", "{w}/model", "--sae", "{w}/nan_sae"], "NaN"),
    (
        "train-sae-out-file",
        ["train-sae", "--hook", "blocks.1.hook_resid_pre", "--width", "8", "--out", "{w}/afile"],
        "file",
    ),
    ("train-judge-out-proc", ["train-judge", "--out", "/proc/saedetox-test/judge"], "not writable"),
    # train-lm, splitting, compare, demo
    ("train-lm-out-file", ["train-lm", "--out", "{w}/afile"], "is a file"),
    ("train-lm-out-proc", ["train-lm", "--out", "/proc/saedetox-test/lm"], "not writable"),
    ("train-lm-max-tokens-0", ["train-lm", "--out", "{t}/lm", "--max-tokens", "0"], "max"),
    ("train-lm-heads", ["train-lm", "--out", "{t}/lm", "--n-embd", "30", "--n-head", "4"], "--n-head"),
    ("train-lm-bad-type", ["train-lm", "--out", "{t}/lm", "--lr", "fast"], "valid number"),
    ("splitting-config-missing", ["splitting", "--config", "{t}/none.yaml", "--out", "{t}/s"], "not found"),
    ("splitting-config-list", ["splitting", "--config", "{w}/list.yaml", "--out", "{t}/s"], "mapping"),
    ("splitting-out-is-a-file", ["splitting", "--out", "{w}/afile"], "is a file"),
    ("compare-run-missing", ["compare", "{w}/done", "{t}/none"], "not found"),
    ("compare-judge-unknown", ["compare", "{w}/done", "{w}/done", "--judge", "nosuch"], "nosuch"),
    ("compare-n-boot-small", ["compare", "{w}/done", "{w}/done", "--n-boot", "5"], "n-boot"),
    ("compare-not-json", ["compare", "{w}/notjson.json", "{w}/done"], "notjson.json"),
    ("demo-out-is-a-file", ["demo", "--out", "{w}/afile"], "is a file"),
    ("demo-out-proc", ["demo", "--out", "/proc/saedetox-test/demo"], "not writable"),
]


def test_the_table_is_large_and_covers_every_command():
    from saedetox.cli.app import app

    assert len(CASES) >= 60
    commands = {argv[0] for _, argv, _ in CASES}
    registered = {c.name for c in app.registered_commands}
    assert len(registered) >= 13 and registered <= commands, registered - commands  # every command, new ones too
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("name,argv,msg", CASES, ids=[c[0] for c in CASES])
def test_bad_input(world, tmp_path, capsys, monkeypatch, name, argv, msg):
    monkeypatch.delenv("PERSPECTIVE_API_KEY", raising=False)
    argv = [a.format(w=world, t=tmp_path) for a in argv]
    before = snapshot(world, tmp_path)
    code, out, err = run_cli(argv, capsys)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, (code, out, err)
    assert len(lines) == 1, err
    assert lines[0].startswith("error:") and "Traceback" not in err + out, err
    assert msg in lines[0], lines[0]
    assert not re.match(r"error: \w+(Error|Exception|Exit|Abort): ", lines[0]), lines[0]  # not the generic fallback
    assert snapshot(world, tmp_path) == before, "bad input left files behind or changed existing ones"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_parent(world, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        argv = [a.format(w=world, t=tmp_path) for a in EV] + ["--out", str(ro / "run")]
        code, _, err = run_cli(argv, capsys)
        assert code == 2 and "not writable" in err and err.strip().count("\n") == 0
        assert not any(ro.iterdir())
    finally:
        ro.chmod(0o755)


def test_generic_fallback_is_kept_for_bugs(world, capsys, monkeypatch):
    """A genuine bug still gives one line, exit 1, and the hint to see the traceback."""
    import saedetox.cli.info as info

    monkeypatch.setattr(info, "load_lm", lambda *a: (_ for _ in ()).throw(KeyError("boom")))
    code, _, err = run_cli(["info", "--model", str(world / "model")], capsys)
    assert code == 1 and err.startswith("error: KeyError:") and "SAEDETOX_DEBUG" in err


def test_undefined_ppl_prints_na(world, tmp_path, capsys, monkeypatch):
    """Every continuation's PPL ≥ 1e4: evaluate says n/a and why instead of crashing on None."""
    import saedetox.eval.run as run

    real = run.conditional_perplexity

    def huge(*a, **kw):
        out = real(*a, **kw)
        return {**out, "ppl": None, "ppl_ci": [None, None], "n_dropped": out["n_scored"], "n_scored": 0}

    monkeypatch.setattr(run, "conditional_perplexity", huge)
    argv = [a.format(w=world, t=tmp_path) for a in EV]
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    assert "ppl_conditional n/a (every continuation's perplexity ≥ 1e4)" in out
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["fluency"]["ppl_conditional"] is None


def test_random_model_ppl_is_really_undefined(tmp_path):
    """The condition the n/a path exists for: a model so damaged that every continuation's PPL is ≥ 1e4."""
    from saedetox.eval.metrics.fluency import conditional_perplexity

    lm = tiny_gpt2()
    with torch.no_grad():
        lm.model.lm_head.weight.mul_(400.0)
    res = conditional_perplexity(lm, ["The weather today", "A cat"], [["is nice and", "was"], ["sat on", "the mat"]])
    assert res["ppl"] is None and res["n_dropped"] == 4
