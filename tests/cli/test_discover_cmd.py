"""``saedetox discover`` on user files: three splits, test-split AUROCs and the detector in features.json."""

from __future__ import annotations

import json

from helpers import run_cli as run
from helpers import tiny_gpt2, write_sae
from saedetox.data.calibration import CALIBRATION_TEXTS


def test_discover_on_user_files(tmp_path, capsys):
    lm = tiny_gpt2()
    lm.model.save_pretrained(tmp_path / "model")
    lm.tokenizer.save_pretrained(tmp_path / "model")
    write_sae(tmp_path / "sae", lm.d_model)
    (tmp_path / "t.txt").write_text("\n".join(f"You stupid idiot, {s.lower()}" for s in CALIBRATION_TEXTS * 3))
    (tmp_path / "c.txt").write_text("\n".join(f"My dear friend, {s.lower()}" for s in CALIBRATION_TEXTS * 3))
    base = ["discover", "--model", str(tmp_path / "model"), "--sae", str(tmp_path / "sae")]
    out_file = tmp_path / "f.json"
    argv = base + ["--toxic", str(tmp_path / "t.txt"), "--clean", str(tmp_path / "c.txt"), "--out", str(out_file)]
    code, out, err = run(argv + ["--k", "2", "--min-auroc", "0.55", "--method", "auroc"], capsys)
    assert code == 0, err
    feats = json.loads(out_file.read_text())
    assert set(feats["splits"]) == {"rank", "select", "test"} and feats["k"] == 2
    assert 1 <= len(feats["selected"]) <= 2 and feats["detector"]["latents"] == feats["selected"]
    assert f"{feats['set_test_auroc']:.3f}" in out and "test split" in out
    # as sd.discover(max_pairs=6); per-latent thresholds (no clean windows read)
    code, _, err = run(argv + ["--method", "auroc", "--max-pairs", "6", "--gate-rate", "0"], capsys)
    assert code == 0, err
    capped = json.loads(out_file.read_text())
    assert capped["splits"]["rank"] == {"toxic": 6, "clean": 6} and capped["splits"]["test"] == {"toxic": 3, "clean": 3}
    assert feats["splits"]["rank"]["toxic"] > 6
    code, out, err = run(base + ["--toxic", str(tmp_path / "t.txt")], capsys)
    assert code != 0 and "clean" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_discover_gate_options(tmp_path, capsys):
    """--gate-rate reads the reference corpus' clean windows; a bad rate is one line, exit 2."""
    lm = tiny_gpt2()
    lm.model.save_pretrained(tmp_path / "model")
    lm.tokenizer.save_pretrained(tmp_path / "model")
    write_sae(tmp_path / "sae", lm.d_model)
    (tmp_path / "t.txt").write_text("\n".join(f"You stupid idiot, {s.lower()}" for s in CALIBRATION_TEXTS * 3))
    (tmp_path / "c.txt").write_text("\n".join(f"My dear friend, {s.lower()}" for s in CALIBRATION_TEXTS * 3))
    out_file = tmp_path / "f.json"
    argv = ["discover", "--model", str(tmp_path / "model"), "--sae", str(tmp_path / "sae"), "--out", str(out_file)]
    argv += ["--toxic", str(tmp_path / "t.txt"), "--clean", str(tmp_path / "c.txt"), "--method", "auroc"]
    code, _, err = run(argv + ["--gate-rate", "1.5"], capsys)
    assert code == 2 and "--gate-rate must be in [0, 1)" in err and "Traceback" not in err and not out_file.exists()
    code, out, err = run(argv + ["--k", "3", "--min-auroc", "0", "--gate-rate", "0.1", "--window-words", "20"], capsys)
    assert code == 0, err
    feats = json.loads(out_file.read_text())
    assert feats["gate"]["calibration"] == "joint" and feats["gate"]["window_words"] == 20
    assert feats["gate"]["select_false_open"] <= 0.1 and "held-out clean windows of 20 words" in out
    assert feats["gate_options"]["gate_rate"] == 0.1


def test_discover_k_grid_and_the_gate_without_the_reference_corpus(tmp_path, capsys):
    """--k 1,2,3 chooses on the select split and says so; own data with a data folder lacking the reference
    corpus: the default joint gate stops with one line, --gate-rate 0 (per-latent thresholds) runs."""
    lm = tiny_gpt2()
    lm.model.save_pretrained(tmp_path / "model")
    lm.tokenizer.save_pretrained(tmp_path / "model")
    write_sae(tmp_path / "sae", lm.d_model)
    (tmp_path / "t.txt").write_text("\n".join(f"You stupid idiot, {s.lower()}" for s in CALIBRATION_TEXTS * 3))
    (tmp_path / "c.txt").write_text("\n".join(f"My dear friend, {s.lower()}" for s in CALIBRATION_TEXTS * 3))
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("not the reference corpus")
    out_file = tmp_path / "f.json"
    argv = ["discover", "--model", str(tmp_path / "model"), "--sae", str(tmp_path / "sae"), "--out", str(out_file)]
    argv += ["--toxic", str(tmp_path / "t.txt"), "--clean", str(tmp_path / "c.txt"), "--method", "auroc"]
    argv += ["--min-auroc", "0.5", "--data-dir", str(mine)]
    code, _, err = run(argv, capsys)
    assert code == 2 and "--gate-rate to 0" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out_file.exists()
    code, _, err = run(argv + ["--k", "x"], capsys)
    assert code == 2 and "--k must be" in err
    code, out, err = run(argv + ["--gate-rate", "0", "--k", "3,1,2"], capsys)
    assert code == 0, err
    feats = json.loads(out_file.read_text())
    c = feats["k_choice"]
    assert c["grid"] == [1, 2, 3] and feats["k"] == c["chosen"] and "gate" not in feats
    assert f"k = {c['chosen']} chosen on the select split" in out
    assert all(f"k={g}: {c['select_auroc'][str(g)]:.3f}" in out for g in c["grid"])
