"""``saedetox sweep CONFIG --dry-run`` on the offline hub mirror: with the repos in the HF cache, the dry run
checks what a networked user's run would hit first (registry model, hook layer, SAE d_in against the model's
width) and refuses a mismatch in one ``error:`` line, before any model is loaded."""

from __future__ import annotations

import sys
from importlib.resources import files
from pathlib import Path

import pytest
import yaml

import hub_mirror as hm
from helpers import tiny_gpt2
from saedetox.cli.app import main

PAPER = Path(str(files("saedetox") / "configs" / "paper"))
GEMMA_SCOPE_16K = f"{hm.GEMMA_SCOPE}/layer_12/width_16k/canonical"
RES_JB_6 = f"{hm.RES_JB}/blocks.6.hook_resid_pre"
GPT2_WIDTH = hm.SMALL_OVERRIDES["gpt2"]["n_embd"]


def dry_run(config: Path, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as ex:
        main(["sweep", str(config), "--dry-run"])
        sys.exit(0)
    out = capsys.readouterr()
    return ex.value.code, out.out, out.err


def variant(tmp_path: Path, name: str, **changes) -> Path:
    """The GPT-2 paper config with top-level keys replaced (judges kept offline so only agreement is tested)."""
    raw = yaml.safe_load((PAPER / "gpt2-small.yaml").read_text(encoding="utf-8"))
    raw["evaluation"]["judges"] = ["profanity", "probe"]
    raw.update(changes)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def refused(code: int, out: str, err: str) -> str:
    assert code == 2 and "dry run OK" not in out, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.mark.parametrize("config", sorted(PAPER.glob("*.yaml")), ids=lambda p: p.stem)
def test_paper_config_dry_run_checks_hooks_and_widths_against_the_cached_repos(hub, config, capsys, tmp_path):
    raw = yaml.safe_load(config.read_text(encoding="utf-8"))
    raw["evaluation"]["judges"] = [j for j in raw["evaluation"]["judges"] if j != "detoxify-original"]
    path = tmp_path / config.name
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    code, out, err = dry_run(path, capsys)
    assert code == 0 and out.rstrip().endswith("dry run OK"), err
    model = raw["model"]
    assert f"model {model}: HF cache" in out and f"model {raw['evaluation']['ref_model']}: HF cache" in out
    for name in [raw["sae"], *raw["splitting"]["saes"]]:
        assert f"sae {name}: trained on" in out and "matches the model" in out
        assert f"sae {name}: d_in " in out and "= model width" in out.split(f"sae {name}: d_in ")[1].splitlines()[0]
    assert "not checked offline" not in out  # every repo is in the cache: nothing left to the real run
    hooks = {"gpt2": ["blocks.6.hook_resid_pre", "blocks.8.hook_resid_pre"], "google/gemma-2-2b": ["blocks.12."]}
    for hook in hooks[model]:
        assert any(line.startswith(f"hook {hook}") and "layer exists" in line for line in out.splitlines()), hook


def test_gpt2_with_a_gemma_scope_sae_is_refused_in_one_line(hub, capsys, tmp_path):
    line = refused(*dry_run(variant(tmp_path, "gpt2-gemma-scope", sae=GEMMA_SCOPE_16K, splitting=None), capsys))
    assert f"SAE {GEMMA_SCOPE_16K} was trained on gemma-2-2b (google/gemma-2-2b), but the model is gpt2" in line


def test_a_hook_the_model_lacks_is_refused_in_one_line(hub, capsys, tmp_path):
    line = refused(*dry_run(variant(tmp_path, "hook-12", hook="blocks.12.hook_resid_pre", splitting=None), capsys))
    assert "Hook 'blocks.12.hook_resid_pre' names layer 12, but gpt2 has 12 layers" in line


def test_a_d_in_mismatch_known_from_the_registry_is_refused_in_one_line(hub, capsys, tmp_path):
    """The SAE's d_in comes from the registry (Gemma Scope: from the id) or its cached cfg.json (res-jb); the
    model is a local checkpoint whose width differs: refused before anything loads."""
    lm = tiny_gpt2()  # 32 wide, not the stand-in's 64
    lm.model.save_pretrained(tmp_path / "gpt2-finetune")
    local = str(tmp_path / "gpt2-finetune")
    for sae, d_in in ((RES_JB_6, GPT2_WIDTH), (GEMMA_SCOPE_16K, hm.GEMMA_2B_D_IN)):
        cfg = variant(tmp_path, "local", model=local, sae=sae, splitting=None, hook="blocks.1.hook_resid_pre")
        line = refused(*dry_run(cfg, capsys))
        assert f"SAE {sae} has d_in {d_in} but {local} has width {lm.d_model}" in line, line


def test_without_the_cache_the_same_checks_are_said_to_be_left_to_the_run(tmp_path, capsys):
    """No mirror (an empty cache): the hook layer and res-jb's d_in cannot be known offline, and the dry run says so."""
    empty = hm.build_mirror(tmp_path / "empty", models=(), saes=())
    with empty.active():
        code, out, err = dry_run(variant(tmp_path, "no-cache", splitting=None), capsys)
    assert code == 0, err
    assert "model gpt2: hub name, not in the HF cache" in out
    assert f"sae {RES_JB_6}: d_in not checked offline" in out and f"sae {RES_JB_6}: hook not known offline" in out
