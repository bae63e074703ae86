"""Both paper configs (src/saedetox/configs/paper/) run end to end on the offline hub mirror.

The code path is a networked user's: hub names → SAE-Lens registry → hub cache → SAE-Lens
conversions → conventions → discovery → every method of the paper's run list → evaluation →
metrics.json + report.html, and the feature-splitting section. The weights are random stand-ins,
so no number is asserted, only that each stage ran on the paper's repos, ids and hooks.

The toy override (``toy``) is the only change to the YAML: the ``evaluation`` protocol shrinks (3
prompts × 2 samples × 4 tokens, offline judges instead of Detoxify, one capability task with 2
items, one clean text), discovery uses 12 pairs and no AUROC floor (random SAEs carry no toxicity
signal to clear it), each run group keeps only its medium tier (every method and mode stays; the
tier only scales α), only ``none`` and ``aura`` are evaluated for capability (the paper's config also evaluates
the four SAE modes: the plan is checked),
and the model runs in float32 on the CPU. On the mirror, Gemma's splitting
section keeps only its 16k SAE: the wider Gemma Scope widths have their real shapes (0.6-4.8 GB
per copy in memory); ``--run-large`` runs 16k vs 32k.
"""

from __future__ import annotations

import json
import re
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

import hub_mirror as hm
from saedetox.data.calibration import CALIBRATION_TEXTS
from saedetox.eval.sampler.sampling import SamplingConfig, sample
from saedetox.experiments import features as sweep_features
from saedetox.experiments import splitting
from saedetox.experiments.config import SweepConfig, parse_config
from saedetox.experiments.plan import plan
from saedetox.experiments.sweep import run_sweep
from saedetox.model.load import load_model
from saedetox.sae.load import load_sae
from saedetox.sae.preflight import preflight
from saedetox.steering.spec import Intervention, SteeringSpec
from saedetox.steering.steerer import Steerer

PAPER = Path(str(files("saedetox") / "configs" / "paper"))
GPT2, GEMMA = PAPER / "gpt2-small.yaml", PAPER / "gemma-2-2b.yaml"
TOY_EVALUATION = {
    "prompts": "challenging",
    "n_prompts": 3,
    "samples": 2,
    "max_new_tokens": 4,
    "judges": ["profanity", "probe"],  # offline; the paper configs' detoxify-original needs a download
    "clean_texts": 1,
    "capability_limit": 2,
    "batch_size": 8,
    "n_boot": 50,
    "seed": 0,
}


def toy(path: Path, **changes: Any) -> tuple[SweepConfig, dict[str, Any]]:
    """The paper config with the toy protocol (see the module docstring); ``changes`` replace top-level keys."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    ev = raw["evaluation"]
    raw["evaluation"] = {**TOY_EVALUATION, "ref_model": ev["ref_model"], "capability": ev["capability"][:1]}
    raw["discovery"] = {**raw["discovery"], "max_pairs": 12, "min_auroc": 0.0}
    raw["runs"] = [
        {**g, **({"tiers": ["medium"]} if g.get("tiers") else {}), "capability": g["method"] in ("none", "aura")}
        for g in raw["runs"]
    ]
    raw.update(dtype="float32", device="cpu", **changes)
    return parse_config(raw), raw


def raw_split_of(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))["splitting"]


def test_the_toy_keeps_every_method_and_mode_of_the_paper_runs():
    for path in (GPT2, GEMMA):
        full = plan(parse_config(yaml.safe_load(path.read_text(encoding="utf-8"))))
        small = plan(toy(path)[0])
        assert len(full) == 17 and {(r.method, r.mode) for r in small} == {(r.method, r.mode) for r in full}
        assert {r.name for r in small} <= {r.name for r in full}
        # the paper's capability runs (the toy keeps none's and aura's: lm-eval costs seconds per run)
        assert {r.method for r in full if r.capability} == {"none", "aura", "sae"}


def _check_sweep(out: Path, cfg: SweepConfig, results: dict[str, Any], hook: str) -> dict[str, Any]:
    """What every paper sweep must leave behind, whatever the numbers."""
    names = [r.name for r in plan(cfg)]
    assert list(results)[: len(names)] == names
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk.keys() == results.keys()
    html = (out / "report.html").read_text()
    assert all(n in html for n in names) and "<img" in html
    feats = json.loads((out / "features.json").read_text())
    assert feats["sae"] == cfg.sae and feats["hook"] == hook and feats["selected"]
    sae_run = results["sae-constant-medium"]["config"]
    assert sae_run["model"] == cfg.model and sae_run["sae"] == cfg.sae and sae_run["hook"] == hook
    assert sae_run["latents"] == feats["selected"] and sae_run["alpha"] > 0
    # the steering acted: the same prompts and noise (common random numbers) gave other continuations
    gens = {
        r: (out / "runs" / r / "generations.jsonl").read_text().splitlines() for r in ("none", "sae-constant-medium")
    }
    assert len(gens["none"]) == len(gens["sae-constant-medium"]) and gens["none"] != gens["sae-constant-medium"]
    for name in ("none", "aura"):  # the toy's capability runs: a group that asks for it gets it, others not
        assert set(results[name]["capability"]) == set(cfg.evaluation.capability), name
    assert not results["prompt"].get("capability"), results["prompt"].get("capability")
    flu = results["none"]["fluency"]
    assert flu["reference_model"] == cfg.evaluation.ref_model and flu["ppl_clean"] > 0
    # random stand-ins: continuations with PPL >= 1e4 (a random GPT-2 scores ~ its 50k vocabulary) are dropped
    n = TOY_EVALUATION["n_prompts"] * TOY_EVALUATION["samples"]
    assert (flu["ppl_conditional"] or 0) > 0 or flu["n_dropped"] + flu["n_empty"] == n, flu
    return json.loads((out / "splitting.json").read_text())


@pytest.mark.slow
def test_gpt2_small_paper_config_end_to_end(hub, tmp_path):
    cfg, raw = toy(GPT2)
    out = tmp_path / "paper-gpt2"
    results = run_sweep(cfg, out, config_source=raw)
    study = _check_sweep(out, cfg, results, "blocks.6.hook_resid_pre")
    # the feature-splitting release at layer 8, shrunk widths with the real expansion factors
    width = hm.SMALL_OVERRIDES["gpt2"]["n_embd"]
    real = [int(n.rsplit("_", 1)[1]) for n in cfg.splitting.saes]
    assert [r["width"] for r in study["rows"]] == [w * width // 768 for w in sorted(real)]
    for row in study["rows"]:
        assert row["selected"] and "tox_prob" in row, row  # every width found latents and was steered
        run = results[f"w{row['width']}-sae-constant-medium"]["config"]
        assert run["hook"] == "blocks.8.hook_resid_pre" and run["sae"] == row["sae"]
    assert study["conclusion"].startswith("With the same discovery and steering budget")
    assert json.loads((out / "manifest.json").read_text())["config"] == raw


@pytest.mark.slow
def test_gemma_2_2b_paper_config_end_to_end(hub, tmp_path, monkeypatch):
    raw_split = raw_split_of(GEMMA)
    only_16k = [n for n in raw_split["saes"] if "/width_16k/" in n]
    cfg, raw = toy(GEMMA, splitting={**raw_split, "saes": only_16k})  # mirror-only: 16k (see the docstring)
    out = tmp_path / "paper-gemma"
    discoveries: list[str] = []
    real_discovery = sweep_features.run_discovery

    def counted(d, lm, sae_name, *args):
        discoveries.append(sae_name)
        return real_discovery(d, lm, sae_name, *args)

    monkeypatch.setattr(sweep_features, "run_discovery", counted)
    monkeypatch.setattr(splitting, "run_discovery", counted)
    results = run_sweep(cfg, out, config_source=raw)
    study = _check_sweep(out, cfg, results, "blocks.12.hook_resid_post")
    # the splitting study's 16k SAE is the main study's: its discovery is reused, not run twice
    assert discoveries == [cfg.sae]
    assert (
        json.loads((out / "splitting" / "w16384" / "features.json").read_text())["selected"]
        == study["rows"][0]["selected"]
    )
    assert [r["width"] for r in study["rows"]] == [16384] and study["rows"][0]["selected"]
    assert study["conclusion"] == "Fewer than two widths: no trend."
    lm = load_model(cfg.model, dtype="float32", device="cpu")
    sae = load_sae(cfg.sae, model_uses_layernorm=lm.uses_layernorm)
    assert not sae.center and sae.prepend_bos and sae.d_in == lm.d_model == hm.GEMMA_2B_D_IN
    report = preflight(lm, sae, texts=CALIBRATION_TEXTS[:3]).to_dict()  # short texts: a 2304 x 16384 SAE
    assert report["d_in"] == report["d_model"] and report["n_tokens"] > 0


def test_gemma_steers_in_bfloat16_as_the_paper_config_asks(hub):
    """The config's dtype: bf16 residuals through the fp32 Gemma Scope SAE (a few tokens: bf16 is slow on CPU)."""
    cfg, _ = toy(GEMMA)
    lm = load_model(cfg.model, dtype="bfloat16", device="cpu")
    spec = SteeringSpec([Intervention(sae=cfg.sae, latents=[1, 2, 3], mode="constant", tier="high")])
    prompts = ["You are such a", "The library opens"]
    batch = lm.encode_prompts(prompts)
    with torch.no_grad():
        plain = lm.model(**batch).logits
        with Steerer(lm, spec):
            steered = lm.model(**batch).logits  # scoring a text: every real position is steered
            samples = sample(lm, prompts, SamplingConfig(n_samples=1, max_new_tokens=3, seed=0, batch_size=2))
    assert steered.dtype == torch.bfloat16 and torch.isfinite(steered).all()
    assert not torch.allclose(plain.float(), steered.float())
    assert all(len(s) == 1 and s[0].text for s in samples)


@pytest.mark.large(reason="Gemma Scope 32k at its real shape: 2304 x 32768, ~0.6 GB per fp32 copy, ~2 GB at load")
def test_gemma_feature_splitting_over_two_widths(tmp_path):
    widths = [n for n in raw_split_of(GEMMA)["saes"] if re.search(r"/width_(16|32)k/", n)]
    mirror = hm.build_mirror(tmp_path / "hub", models=("google/gemma-2-2b",), saes=widths)
    cfg, raw = toy(GEMMA, splitting={**raw_split_of(GEMMA), "saes": widths}, runs=[{"method": "none"}])
    with mirror.active():
        run_sweep(cfg, tmp_path / "out", config_source=raw)
    study = json.loads((tmp_path / "out" / "splitting.json").read_text())
    assert [r["width"] for r in study["rows"]] == [16384, 32768]
    assert study["conclusion"].startswith("With the same discovery and steering budget")


def test_paper_configs_say_what_is_the_papers_and_what_is_ours():
    for path in (GPT2, GEMMA):
        text = path.read_text(encoding="utf-8")
        sae_line = next(line for line in text.splitlines() if line.startswith("sae:"))
        assert "saedetox's choice" in sae_line, sae_line  # the paper states no layer or release
        above_splitting = text.split("\nsplitting:")[0].rsplit("\nruns:", 1)[1]
        assert "saedetox's choice" in above_splitting, path.name
    # GPT-2: the splitting release's layer differs from the main study's, and the comment says so
    gpt2_note = GPT2.read_text(encoding="utf-8").split("\nsplitting:")[0].rsplit("\nruns:", 1)[1]
    assert "blocks.8" in gpt2_note and "blocks.6" in gpt2_note
    # Gemma: the title names exactly the main width and the splitting widths
    title = " ".join(GEMMA.read_text(encoding="utf-8").splitlines()[:2])
    split = set(re.findall(r"/width_(\w+)/", "\n".join(raw_split_of(GEMMA)["saes"])))
    main = re.search(r"/width_(\w+)/", yaml.safe_load(GEMMA.read_text(encoding="utf-8"))["sae"])[1]
    assert set(re.findall(r"\b(\d+k|\d+m)\b", title)) == split | {main}, title
