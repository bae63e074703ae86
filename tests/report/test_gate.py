"""The report's gate block: every number shown equals the run's metrics.json ``gate``, in HTML and markdown."""

from __future__ import annotations

import html as html_lib
import re
from pathlib import Path

from saedetox.report.markdown import markdown_summary
from saedetox.report.write import write_report


def _gate(seed: float) -> dict:
    return {
        "n_texts": 250,
        "open_rate": 0.1234 + seed,
        "auroc_toxic": 0.8123 + seed,
        "auroc_open": 0.6071 + seed,
        "toxic_rate_open": 0.4567 + seed,
        "toxic_rate_shut": 0.0211 + seed,
        "clean_false_open": 0.0476 + seed,
        "clean_windows": 529,
        "window_words": 31,
        "latents": 37,
        "features": "features.json",
        "judge": "probe",
    }


def _runs() -> dict:
    base = {"samples_per_prompt": 1, "n_prompts": 250, "fluency": {"ppl_conditional": 10.0}}
    return {
        "none": {**base, "toxicity": {"probe": {"tox_prob": 0.3}}, "gate": _gate(0.0)},
        "sae-adaptive-p0.2": {**base, "toxicity": {"probe": {"tox_prob": 0.2}}, "gate": _gate(0.1)},
        "aura": {**base, "toxicity": {"probe": {"tox_prob": 0.25}}},
    }


KEYS = ("auroc_toxic", "auroc_open", "open_rate", "toxic_rate_open", "toxic_rate_shut", "clean_false_open")


def _expected(g: dict) -> list[str]:
    """The row as computed here from metrics.json: the numbers at three decimals, k, latents, windows."""
    return ["37", "1", "250", *(f"{g[k]:.3f}" for k in KEYS), "529 (31)", "probe"]


def test_markdown_gate_rows_equal_metrics_json():
    runs = _runs()
    md = markdown_summary(runs)
    assert "### Gate selectivity" in md and "AUROC toxic continuation" in md and "per prompt (k)" in md
    rows = {
        cells[0]: cells[1:]
        for line in md.split("### Gate selectivity")[1].splitlines()
        if line.startswith("| ") and not line.startswith("| run")
        for cells in [[c.strip() for c in line.strip("|").split("|")]]
    }
    assert set(rows) == {"none", "sae-adaptive-p0.2"}  # aura measured no gate
    for name, cells in rows.items():
        assert cells == _expected(runs[name]["gate"]), name


def test_html_gate_rows_equal_metrics_json(tmp_path: Path):
    runs = _runs()
    page = write_report(runs, tmp_path / "r.html").read_text()
    sec = re.search(r'<section id="gate">(.*?)</section>', page, re.S).group(1)
    for name in ("none", "sae-adaptive-p0.2"):
        tr = re.search(rf"<tr[^>]*>\s*<td[^>]*>{re.escape(name)}</td>(.*?)</tr>", sec, re.S).group(1)
        cells = [
            html_lib.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)
        ]
        assert cells == _expected(runs[name]["gate"]), name
    assert "aura" not in sec and "unsteered continuation" in sec


def test_no_gate_block_no_gate_section(tmp_path: Path):
    runs = {n: {k: v for k, v in m.items() if k != "gate"} for n, m in _runs().items()}
    assert "Gate selectivity" not in markdown_summary(runs)
    assert 'id="gate"' not in write_report(runs, tmp_path / "r.html").read_text()
