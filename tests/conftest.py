"""Shared fixtures. Tests never touch the network: the hub is switched to offline mode."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("SAEDETOX_QUIET", "1")
sys.path.insert(0, str(Path(__file__).parent))

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def gpt2():
    from helpers import tiny_gpt2

    return tiny_gpt2()


@pytest.fixture(scope="session")
def sae_dir(tmp_path_factory, gpt2):
    from helpers import write_sae

    return write_sae(tmp_path_factory.mktemp("sae") / "sae", gpt2.d_model, d_sae=64, hook="blocks.1.hook_resid_pre")
