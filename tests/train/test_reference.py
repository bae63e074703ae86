"""The committed reference world loads offline through the normal model/SAE paths and is what its card says."""

from __future__ import annotations

import json

import pytest
import torch

from saedetox.data.location import data_file
from saedetox.eval.metrics.capability import blimp_accuracy
from saedetox.model.load import load_model, reference_model_dir
from saedetox.sae.load import load_sae, reference_sae_dir, reference_sae_widths
from saedetox.sae.preflight import preflight
from saedetox.train.sae import corpus_texts

ASSETS = reference_model_dir().parent
MAX_BYTES = 25 * 2**20


@pytest.fixture(scope="module")
def ref_lm():
    return load_model("reference")


def test_assets_fit_the_size_budget():
    total = sum(p.stat().st_size for p in ASSETS.rglob("*") if p.is_file())
    judge = reference_model_dir().parents[1] / "judge"
    total += sum(p.stat().st_size for p in judge.rglob("*") if p.is_file())
    assert 0 < total <= MAX_BYTES


def test_reference_model_loads_and_writes_english(ref_lm):
    assert ref_lm.name == "reference"
    assert ref_lm.d_model == 256
    ids = ref_lm.tokenizer("The weather today is", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = ref_lm.model(ids).logits
    assert torch.isfinite(logits).all()
    # the model prefers a grammatical sentence over a scrambled one
    good = ref_lm.tokenizer("The children are playing in the garden.", return_tensors="pt")["input_ids"]
    bad = ref_lm.tokenizer("garden the in playing are children The.", return_tensors="pt")["input_ids"]

    def nll(x):
        with torch.no_grad():
            return float(ref_lm.model(x, labels=x).loss) * (x.shape[1] - 1)

    assert nll(good) < nll(bad)


def test_at_least_three_sae_widths_at_one_hook():
    widths = reference_sae_widths()
    assert len(widths) >= 3
    hooks = {json.loads((reference_sae_dir(w) / "cfg.json").read_text())["metadata"]["hook_name"] for w in widths}
    assert len(hooks) == 1


@pytest.mark.parametrize("width", reference_sae_widths())
def test_each_sae_loads_and_fits_the_model(ref_lm, width):
    sae = load_sae(f"reference/width_{width}", ref_lm)
    assert sae.d_sae == width and sae.d_in == ref_lm.d_model
    rep = preflight(ref_lm, sae)
    assert not rep.warnings, rep.warnings
    assert rep.explained_variance > 0.7
    assert 4 <= rep.mean_l0 <= 80
    assert rep.ce_delta < 0.5


@pytest.mark.slow
def test_card_numbers_are_recomputed_from_the_committed_weights_and_data(ref_lm):
    """The card's SAE and LM numbers, recomputed on a slice of the same held-out data (not read back)."""
    card = json.loads((ASSETS / "card.json").read_text())
    row = next(r for r in card["saes"] if f"width_{r['width']}" == card["main_sae"])
    sae = load_sae("reference", ref_lm)
    assert sae.d_sae == row["width"] and sae.hook_name == row["hook"]
    # the SAE's own evaluation texts (train.sae.evaluate_sae_dir: shuffled held-out chunks), first 20 of 400
    texts = corpus_texts(None, row["config"]["seed"], role="lm_heldout")[:20]
    rep = preflight(ref_lm, sae, texts=texts, hook=row["hook"], batch_size=8)
    assert rep.explained_variance == pytest.approx(row["explained_variance"], abs=0.02)
    assert rep.mean_l0 == pytest.approx(row["mean_l0"], abs=2.0)
    assert rep.ce_delta == pytest.approx(row["ce_delta"], abs=0.05)
    assert rep.explained_variance >= 0.8 and 8 <= rep.mean_l0 <= 64  # the quality bar, on recomputed numbers
    # BLiMP: every 20th pair of the card's 6,700 (binomial SE at n = 335 is about 0.027)
    rows = data_file("benchmarks/blimp/blimp_first100_per_paradigm.jsonl").read_text().splitlines()
    pairs = [json.loads(x) for x in rows if x.strip()]
    assert len(pairs) == card["blimp_pairs"]
    acc = blimp_accuracy(ref_lm, pairs[::20])
    assert acc == pytest.approx(card["blimp_accuracy"], abs=0.08) and acc >= 0.55
