"""Shared fixtures. Tests never touch the network: the hub is switched to offline mode.

``mirror`` (session) builds the offline hub mirror (tests/hub_mirror) once, with stand-ins for
every repo and SAE id the paper configs name (Gemma Scope at 16k only; wider ones are GB-sized);
``hub`` activates it for one test and restores the hub settings after. Tests marked ``large``
need GBs of memory and run only with ``--run-large`` (reported as skipped, with the reason, otherwise).
Tests marked ``slow`` (the long ones: full sweeps, end-to-end runs, killed processes) always run;
``-m 'not slow'`` leaves them out, and ``--durations=20`` (pyproject) lists where the time went.
"""

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

import hub_mirror as hm  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))


def pytest_addoption(parser):
    parser.addoption(
        "--run-large",
        action="store_true",
        help="also run tests marked large (GB-sized mirrors: real-shape Gemma Scope widths above 16k, full GPT-2)",
    )


def pytest_configure(config):
    config.addinivalue_line("markers", "large(reason): needs GBs of memory; runs only with --run-large")
    config.addinivalue_line(
        "markers",
        "slow: a long test (full sweeps, end-to-end demo and paper-config runs, killed workers and processes, "
        "exports of the reference LM); always run, `-m 'not slow'` leaves them out",
    )


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-large"):
        return
    for item in items:
        mark = item.get_closest_marker("large")
        if mark is not None:
            why = mark.kwargs.get("reason") or (mark.args[0] if mark.args else "GB-sized")
            item.add_marker(pytest.mark.skip(reason=f"opt-in with --run-large: {why}"))


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


@pytest.fixture(scope="session")
def mirror(tmp_path_factory):
    """The offline hub mirror with the paper configs' repos and SAE ids (built once, not active)."""
    # params.npz stored, not deflated (302 MB on disk): each Gemma Scope load takes ~1.4 s instead of ~4 s
    saes = hm.paper_saes(gemma_widths=("16k",))
    return hm.build_mirror(tmp_path_factory.mktemp("hub"), saes=saes, gemma_scope_compress=False)


@pytest.fixture
def hub(mirror):
    """The mirror, active for one test: huggingface_hub resolves in it, offline; restored after."""
    with mirror.active() as m:
        yield m
