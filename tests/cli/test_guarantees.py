"""Guarantees (docs/guarantees.md) that no other test file holds: one writer for sweep and export folders, and a
run whose conditional perplexity is undefined (every continuation ≥ 1e4) ends cleanly end to end."""

from __future__ import annotations

import json

import pytest
import torch

from helpers import run_cli as run
from helpers import tiny_gpt2, write_sae
from saedetox.io import folder_lock

EV = ["--n-prompts", "3", "--samples", "2", "--max-new-tokens", "3", "--clean-texts", "0", "--judges", "profanity"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("guarantees")
    lm = tiny_gpt2()
    lm.model.save_pretrained(root / "model")
    lm.tokenizer.save_pretrained(root / "model")
    write_sae(root / "sae", lm.d_model, hook="blocks.1.hook_resid_pre")
    damaged = tiny_gpt2()
    with torch.no_grad():  # every next-token distribution nearly one-hot on a random token
        damaged.model.lm_head.weight.mul_(400.0)
    damaged.model.save_pretrained(root / "damaged")
    damaged.tokenizer.save_pretrained(root / "damaged")
    return root


@pytest.mark.parametrize("command", ["sweep", "export"])
def test_a_folder_in_use_is_refused_at_once_and_left_alone(world, tmp_path, capsys, command):
    out = tmp_path / "out"
    if command == "sweep":
        cfg = tmp_path / "s.yaml"
        raw = {
            "model": str(world / "model"),
            "sae": str(world / "sae"),
            "features": [1, 2],
            "runs": [{"method": "none"}],
        }
        raw["evaluation"] = {
            "n_prompts": 2,
            "samples": 2,
            "max_new_tokens": 3,
            "clean_texts": 0,
            "judges": ["profanity"],
        }
        cfg.write_text(json.dumps(raw))
        argv = ["sweep", cfg, "--out", out]
    else:
        argv = ["export", "--model", world / "model", "--sae", world / "sae", "--features", "1,2", "--strength", "2"]
        argv += ["--out", out]
    with folder_lock(out, "another writer"):  # held as a running process holds it
        code, _, err = run(argv, capsys)
        assert code == 2 and err.count("\n") == 1 and "in use by another saedetox process" in err, err
        assert not out.exists()
    code, _, err = run(argv, capsys)  # free again: the same command now runs
    assert code == 0, err
    assert out.is_dir() and any(out.iterdir())


def test_every_ppl_undefined_prints_na_and_reports(world, tmp_path, capsys):
    """A really damaged reference LM (no monkeypatching): evaluate exits 0 with n/a and why; report and compare run.

    The continuations come from the plain model and are scored by the damaged one (``--ref-model``);
    scored by itself a damaged model would find its own near-greedy samples likely.
    """
    run_dir = tmp_path / "run"
    argv = ["evaluate", "--model", world / "model", "--ref-model", world / "damaged", "--out", run_dir, *EV]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["fluency"]["ppl_conditional"] is None and m["fluency"]["n_dropped"] > 0
    assert "ppl_conditional n/a (every continuation's perplexity ≥ 1e4)" in out
    # the condition really holds: every continuation's perplexity, recomputed here, is ≥ the cut-off
    rows = [json.loads(x) for x in (run_dir / "generations.jsonl").read_text().splitlines()]
    from saedetox.model.load import load_model

    lm = load_model(str(world / "damaged"), dtype="float32", device="cpu")
    for r in rows:
        for c in r["continuations"]:
            ids_p = lm.tokenizer(r["prompt"])["input_ids"]
            ids_c = lm.tokenizer(c)["input_ids"]
            if not ids_c:
                continue
            ids = torch.tensor([[lm.tokenizer.bos_token_id, *ids_p, *ids_c]])
            with torch.no_grad():
                logp = lm.model(ids).logits[0, :-1].float().log_softmax(-1)
            nll = -logp[torch.arange(ids.shape[1] - 1), ids[0, 1:]][-len(ids_c) :].mean()
            assert float(nll.exp()) >= 1e4
    code, out, err = run(["report", run_dir, "--out", tmp_path / "r.html"], capsys)
    assert code == 0, err
    md = (tmp_path / "r.md").read_text()
    head, row = [ln for ln in md.splitlines() if ln.startswith("| ")][:2]
    cells = dict(zip([c.strip() for c in head.split("|")], [c.strip() for c in row.split("|")], strict=True))
    assert cells["cond. PPL"] == "–" and "None" not in md and "nan" not in md  # shown as missing, not a number
    code, out, err = run(["compare", run_dir, run_dir], capsys)
    assert code == 0, err
