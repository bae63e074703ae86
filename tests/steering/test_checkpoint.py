"""Atomic export: a folder appears whole or not at all, overwriting replaces it whole, a killed export leaves no mix."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import write_sae
from saedetox.cli.app import main
from saedetox.errors import SaedetoxError
from saedetox.model.load import load_model
from saedetox.steering import checkpoint
from saedetox.steering.export import export
from saedetox.steering.spec import Intervention, SteeringSpec

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def world(tmp_path_factory, gpt2):
    root = tmp_path_factory.mktemp("ckpt")
    gpt2.model.save_pretrained(root / "model")
    gpt2.tokenizer.save_pretrained(root / "model")
    write_sae(root / "sae", gpt2.d_model, hook="blocks.1.hook_resid_pre")
    return root


def spec(world, strength=2.0):
    return SteeringSpec([Intervention(sae=str(world / "sae"), latents=[1, 2], strength=strength)])


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def assert_complete(folder: Path) -> None:
    """Loadable, and a sharded index names exactly the shards that are there."""
    from transformers import AutoModelForCausalLM

    index = folder / "model.safetensors.index.json"
    shards = {p.name for p in folder.glob("*.safetensors")}
    if index.exists():
        assert set(json.loads(index.read_text())["weight_map"].values()) == shards
    else:
        assert shards == {"model.safetensors"}
    AutoModelForCausalLM.from_pretrained(folder)
    assert (folder / "saedetox_export.json").exists()


def test_non_empty_target_is_refused_unless_overwrite(tmp_path, gpt2, world):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(checkpoint.TargetNotEmpty, match="not empty"):
        export(gpt2, spec(world), out)
    assert digest(out) == {"notes.txt": hashlib.sha1(b"mine").hexdigest()}
    export(gpt2, spec(world), out, overwrite=True)
    assert not (out / "notes.txt").exists()
    assert_complete(out)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")] == [".out.lock"]


def test_the_source_folder_is_never_the_target(world):
    lm = load_model(str(world / "model"), dtype="float32", device="cpu")
    before = digest(world / "model")
    with pytest.raises(SaedetoxError, match="loaded from"):
        export(lm, spec(world), world / "model", overwrite=True)
    assert digest(world / "model") == before


def test_a_crash_left_aside_folder_is_put_back(tmp_path, gpt2, world, monkeypatch):
    out = tmp_path / "out"
    export(gpt2, spec(world), out, max_shard_size="20KB")
    first = digest(out)
    monkeypatch.setattr(checkpoint, "_exchange", lambda a, b: False)  # the rename-aside path
    real_rename = os.rename

    def crash_after_aside(src, dst):
        real_rename(src, dst)
        if Path(dst).name.startswith(".out.old-"):
            raise KeyboardInterrupt  # dies between the two renames

    monkeypatch.setattr(checkpoint.os, "rename", crash_after_aside)
    with pytest.raises(KeyboardInterrupt):
        export(gpt2, spec(world, 5.0), out, overwrite=True)
    assert not out.exists()
    monkeypatch.setattr(checkpoint.os, "rename", real_rename)
    with pytest.raises(checkpoint.TargetNotEmpty):  # the next export first puts the old folder back
        export(gpt2, spec(world, 5.0), out)
    assert digest(out) == first
    export(gpt2, spec(world, 5.0), out, overwrite=True)  # the fallback path replaces it whole
    assert digest(out) != first
    assert_complete(out)


@pytest.mark.slow
def test_killed_export_leaves_nothing_or_the_previous_folder(tmp_path, gpt2, world):
    fresh, previous = tmp_path / "fresh", tmp_path / "previous"
    export(gpt2, spec(world, 1.0), previous, max_shard_size="20KB")
    before = digest(previous)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(checkpoint.__file__).parents[2]), str(HERE.parent)])}
    procs = []
    for out, extra in ((fresh, []), (previous, ["overwrite"])):
        marker = tmp_path / f"{out.name}.saving"
        cmd = [sys.executable, str(HERE / "slow_export.py"), str(world / "model"), str(world / "sae"), str(out)]
        procs.append((subprocess.Popen([*cmd, str(marker), *extra], env=env), marker))
    try:
        deadline = time.time() + 240
        while not all(m.exists() for _, m in procs) and time.time() < deadline:
            assert all(p.poll() is None for p, _ in procs), "the export helper exited early"
            time.sleep(0.2)
        assert all(m.exists() for _, m in procs), "the exports never reached saving"
        partial = [p for p in tmp_path.iterdir() if ".export-" in p.name]
        assert len(partial) == 2 and all(any(d.glob("*.safetensors")) for d in partial)  # killed mid-save
    finally:
        for p, _ in procs:
            p.send_signal(signal.SIGKILL)
            p.wait()
    assert not fresh.exists()
    assert digest(previous) == before
    assert_complete(previous)
    for out in (fresh, previous):  # the next export to a target clears its debris
        export(gpt2, spec(world, 3.0), out, overwrite=True)
        assert_complete(out)
    assert not [p for p in tmp_path.iterdir() if ".export-" in p.name]


def test_cli_overwrites_a_sharded_model_folder(tmp_path, gpt2, world, capsys):
    target = tmp_path / "target"
    gpt2.model.save_pretrained(target, max_shard_size="20KB")  # an existing sharded model folder
    assert (target / "model.safetensors.index.json").exists()
    argv = ["export", "--model", str(world / "model"), "--sae", str(world / "sae"), "--features", "1,2"]
    argv += ["--strength", "2", "--out", str(target)]
    with pytest.raises(SystemExit) as ex:
        main(argv)
    assert ex.value.code == 2 and "--overwrite" in capsys.readouterr().err
    with pytest.raises(SystemExit) as ex:
        main([*argv, "--overwrite"])
        sys.exit(0)
    assert ex.value.code == 0, capsys.readouterr().err
    assert not (target / "model.safetensors.index.json").exists()  # no index left pointing at deleted shards
    assert_complete(target)
