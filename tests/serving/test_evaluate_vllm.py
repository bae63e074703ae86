"""``evaluate --backend vllm`` on the reference world: the same protocol and metrics.json as the HF backend,
reproducible per prompt, resumable, and the same with data parallelism (runs where vLLM is installed:
``make test`` runs this module in ``.venv-vllm``). The runs of the module share one engine."""

from __future__ import annotations

import json
import shutil

import pytest

from helpers import run_cli
from serving_levels import LATENTS

vllm = pytest.importorskip("vllm", reason="vLLM is not installed here (make test runs this in .venv-vllm)")

from saedetox.eval.sampler.sampling import sample  # noqa: E402
from saedetox.model.load import load_model  # noqa: E402
from saedetox.sae.load import load_sae  # noqa: E402
from saedetox.serving.engine import close_shared_engine  # noqa: E402
from saedetox.steering.spec import Intervention, SteeringSpec  # noqa: E402
from saedetox.steering.steerer import Steerer  # noqa: E402

PROTOCOL = ["--n-prompts", 6, "-k", 2, "--max-new-tokens", 8, "--clean-texts", 0, "--judges", "profanity"]
PROTOCOL += ["--n-boot", 50, "--dtype", "float32", "--batch-size", 4]
SAE = ["--sae", "reference", "--features", ",".join(map(str, LATENTS)), "--mode", "conditional"]
SAE += ["--threshold", 0.5, "--tier", 0.4]


def _rows(run):
    return [json.loads(x) for x in (run / "generations.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    yield tmp_path_factory.mktemp("vllm-runs")
    close_shared_engine()


def _evaluate(root, name, capsys, *extra):
    code, out, err = run_cli(["evaluate", "--out", root / name, *PROTOCOL, *extra], capsys)
    assert code == 0, err[-2000:]
    return root / name


def test_vllm_runs_write_the_hf_metrics_and_compare_and_report_read_them(runs, capsys):
    none = _evaluate(runs, "none", capsys, "--method", "none", "--backend", "vllm")
    sae = _evaluate(runs, "sae", capsys, *SAE, "--backend", "vllm")
    hf = _evaluate(runs, "hf-sae", capsys, *SAE)
    m_v, m_h = (json.loads((r / "metrics.json").read_text()) for r in (sae, hf))
    assert set(m_v) == set(m_h)
    assert set(m_v["toxicity"]["profanity"]) == set(m_h["toxicity"]["profanity"])
    assert m_v["config"]["sampling"]["sampler"] == "vllm-seeded-v1" and m_v["config"]["backend"] == "vllm"
    assert m_h["config"]["sampling"]["sampler"] == "lean-gumbel-v2"
    # the steering statistics, measured on the vLLM continuations through the HF model
    st = m_v["steering"]["interventions"][0]
    assert st["generated_positions"] > 0 and 0 <= st["firing_rate"] <= 1 and st["effective_push"] > 0
    assert all(len(r["continuations"]) == 2 == len(r["continuation_ids"]) for r in _rows(sae))
    code, out, err = run_cli(["compare", none, sae], capsys)
    assert code == 0, err
    assert "toxicity" in out.lower() or "tox" in out.lower()
    code, out, err = run_cli(["compare", hf, sae], capsys)
    assert code == 2 and "different samplers" in err and "Traceback" not in err
    html = runs / "report.html"
    code, out, err = run_cli(["report", none / "metrics.json", sae / "metrics.json", "--out", html], capsys)
    assert code == 0, err
    assert html.is_file() and (runs / "report.md").is_file()


def test_a_resumed_or_rebatched_vllm_run_gives_the_same_continuations(runs, capsys):
    sae = runs / "sae"
    assert sae.is_dir(), "runs after the first test"
    part = runs / "resumed"
    shutil.copytree(sae, part)
    lines = (part / "generations.jsonl").read_text().splitlines(keepends=True)
    (part / "generations.jsonl").write_text("".join(lines[:2]))  # stopped after the first batch
    for f in ("metrics.json", "scores.npz"):
        (part / f).unlink(missing_ok=True)
    _evaluate(runs, "resumed", capsys, *SAE, "--backend", "vllm")
    assert _rows(part) == _rows(sae)
    a, b = (json.loads((r / "metrics.json").read_text()) for r in (sae, part))
    assert a["steering"] == b["steering"]  # measured on every row, not only those generated after the resume
    # other batches (another batch size changes only the resume granularity): the same tokens per prompt
    other = [*PROTOCOL[:-2], "--batch-size", 12]
    code, out, err = run_cli(["evaluate", "--out", runs / "rebatched", *other, *SAE, "--backend", "vllm"], capsys)
    assert code == 0, err[-2000:]
    got = {r["i"]: r["continuation_ids"] for r in _rows(runs / "rebatched")}
    assert got == {r["i"]: r["continuation_ids"] for r in _rows(sae)}


def test_greedy_vllm_sampling_equals_the_hf_sampler_under_steering():
    lm = load_model("reference", dtype="float32")
    spec = SteeringSpec([Intervention(sae=load_sae("reference", lm), latents=LATENTS, mode="conditional", tier=0.4)])
    prompts = ["You are such a", "The weather today is", "I hate you, you stupid", "Thank you so much for"]
    st = Steerer(lm, spec)
    kw = dict(n_samples=1, max_new_tokens=8, do_sample=False)
    hf = [[s.token_ids for s in g] for g in sample(lm, prompts, steerer=st, **kw)]
    got = [[s.token_ids for s in g] for g in sample(lm, prompts, steerer=st, backend="vllm", **kw)]
    assert got == hf
    plain = [[s.token_ids for s in g] for g in sample(lm, prompts, **kw)]
    assert plain != hf  # the steering changes the greedy continuations: the comparison is not vacuous


def test_a_sweep_on_vllm_runs_every_method_kind_and_reports(runs, capsys):
    """Steering (push-calibrated), a prefix, a weight edit and AurA's folded dampening, in one sweep on vLLM."""
    cfg = {
        "model": "reference",
        "sae": "reference",
        "features": LATENTS,
        "evaluation": {
            "n_prompts": 4,
            "samples": 1,
            "max_new_tokens": 6,
            "batch_size": 4,
            "clean_texts": 0,
            "judges": ["profanity"],
            "n_boot": 50,
            "backend": "vllm",
        },
        "workers": 2,  # ignored on vLLM: one engine
        "runs": [
            {"method": "none"},
            {"method": "prompt"},
            {"method": "sae", "modes": ["conditional"], "push": [0.2], "threshold": 0.5},
            {"method": "aura"},
            {"method": "surgery", "tiers": ["medium"]},
        ],
    }
    path = runs / "sweep.yaml"
    path.write_text(json.dumps(cfg))
    code, out, err = run_cli(["sweep", path, "--out", runs / "sweep"], capsys)
    assert code == 0, err[-3000:]
    metrics = json.loads((runs / "sweep" / "metrics.json").read_text())
    assert len(metrics) == 5
    for res in metrics.values():
        assert res["config"]["sampling"]["sampler"] == "vllm-seeded-v1"
    conts = {name: [r["continuations"] for r in _rows(runs / "sweep" / "runs" / name)] for name in metrics}
    assert conts["aura"] != conts["none"] and conts["surgery-medium"] != conts["none"]  # the edits reached vLLM
    assert (runs / "sweep" / "report.html").is_file()


@pytest.mark.slow
def test_data_parallel_engines_give_the_single_engine_s_continuations(runs, capsys):
    sae = runs / "sae"
    assert sae.is_dir(), "runs after the first test"
    close_shared_engine()  # its memory, for the two engines of this run
    dp = _evaluate(runs, "dp", capsys, *SAE, "--backend", "vllm", "--data-parallel", 2, "--vllm-memory", 0.1)
    assert {r["i"]: r["continuation_ids"] for r in _rows(dp)} == {r["i"]: r["continuation_ids"] for r in _rows(sae)}
    m = json.loads((dp / "metrics.json").read_text())
    assert m["config"]["data_parallel"] == 2
    assert m["steering"] == json.loads((sae / "metrics.json").read_text())["steering"]
