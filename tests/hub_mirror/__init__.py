"""An offline Hugging Face hub mirror for tests: random-weight stand-ins under the real repo ids.

``build_mirror(cache_dir)`` writes, in the cache layout ``huggingface_hub`` resolves with
``HF_HUB_OFFLINE=1``::

    {cache}/models--{org}--{name}/refs/main                   -> "<40-hex commit>" (no newline)
    {cache}/models--{org}--{name}/blobs/<sha256|git-sha1>      (content)
    {cache}/models--{org}--{name}/snapshots/<commit>/<path>    -> ../../blobs/<hash> (relative symlink)

the repos the paper configs name: ``gpt2`` and ``gpt2-xl`` (GPT-2 BPE tokenizer from the shared
data), ``google/gemma-2-2b`` and ``google/gemma-2-9b`` (an offline Gemma-style tokenizer), the
``gpt2-small-res-jb`` and ``gpt2-small-res-jb-feature-splitting`` SAE-Lens folders, and Gemma
Scope ``params.npz`` files of ``gemma-scope-2b-pt-res-canonical``.

``activate(cache_dir)`` (or ``Mirror.active()``) points ``huggingface_hub`` at it and switches
offline mode on, through the environment (libraries imported later) and by patching
``huggingface_hub.constants`` (read at call time by ``hf_hub_download``, transformers'
``cached_files`` and ``is_offline_mode``; they are copied from the environment once, at import,
so setting the environment alone does nothing inside a running pytest). It returns a restore function.

Shapes. By default every shape a loader fixes by itself is kept and the rest shrunk: the Gemma
Scope loader hard-codes d_in = 2304 and d_sae from the folder name, so the Gemma-2-2B stand-in
keeps hidden size 2304 and the npz files keep the real shapes (stored sparse and deflated, so
they are small on disk, but a 16k SAE is 302 MB in memory and every wider one more: opt in);
the SAE-Lens loader reads d_in/d_sae from cfg.json, so the GPT-2 stand-in is 64 wide and its
SAEs keep the real expansion factors (d_sae = real × 64/768). ``full=True`` (or a subset of
``FULL_PARTS``) writes the real shapes: a flag for GPU benchmarks, never for CI.

Stand-ins are random: they test the loading and conversion path, never a number.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

import huggingface_hub.constants as hf_constants
import yaml

from saedetox.data.calibration import CALIBRATION_TEXTS
from saedetox.data.location import data_file
from saedetox.data.roles import paradetox_by_role

from .facts import (  # re-exported: tests compare what they load with these
    FS_REPO,
    GEMMA_2B_D_IN,
    GEMMA_SCOPE_L12_CANONICAL,
    GEMMA_SCOPE_REPO,
    GEMMA_STAND_IN_VOCAB,
    GEMMA_WIDTHS,
    REAL_CONFIGS,
    RES_JB_D_SAE,
    RES_JB_REPO,
    SMALL_OVERRIDES,
)
from .gemma_tokenizer import gemma_tokenizer_files
from .models import write_gemma, write_gpt2
from .saes import write_feature_splitting, write_gemma_scope, write_res_jb

__all__ = [
    "FS_REPO",
    "GEMMA_2B_D_IN",
    "GEMMA_SCOPE_L12_CANONICAL",
    "GEMMA_SCOPE_REPO",
    "GEMMA_STAND_IN_VOCAB",
    "GEMMA_WIDTHS",
    "REAL_CONFIGS",
    "RES_JB_D_SAE",
    "RES_JB_REPO",
    "SMALL_OVERRIDES",
    "Mirror",
    "activate",
    "build_mirror",
    "gemma_scope_width",
    "paper_saes",
    "sae_location",
]

RES_JB = "gpt2-small-res-jb"
FS = "gpt2-small-res-jb-feature-splitting"
GEMMA_SCOPE = "gemma-scope-2b-pt-res-canonical"
SAELENS_FILES = ("cfg.json", "sae_weights.safetensors", "sparsity.safetensors")  # sparsity is optional
GEMMA_SCOPE_FILES = ("params.npz",)
MODELS = ("gpt2", "gpt2-xl", "google/gemma-2-2b", "google/gemma-2-9b")
FULL_PARTS = (*MODELS, "gemma-scope")
DEFAULT_SAES = (
    f"{RES_JB}/blocks.6.hook_resid_pre",
    *(f"{FS}/blocks.8.hook_resid_pre_{w}" for w in (768, 3072, 12288, 24576, 98304)),
    f"{GEMMA_SCOPE}/layer_12/width_16k/canonical",
)


def sae_location(name: str) -> tuple[str, str, tuple[str, ...]]:
    """``release/sae_id`` → (hub repo, folder in it, files the mirror writes there), as the registry maps it."""
    release, _, sae_id = name.partition("/")
    if release == RES_JB:
        return RES_JB_REPO, sae_id, SAELENS_FILES
    if release == FS:
        return FS_REPO, sae_id, SAELENS_FILES
    if release == GEMMA_SCOPE:
        width = gemma_scope_width(sae_id)
        return GEMMA_SCOPE_REPO, GEMMA_SCOPE_L12_CANONICAL[width], GEMMA_SCOPE_FILES
    raise ValueError(f"the hub mirror has no stand-in for SAE {name!r}")


def gemma_scope_width(sae_id: str) -> str:
    """``layer_12/width_16k/canonical`` → ``16k`` (only layer 12's canonical ids are mirrored)."""
    parts = sae_id.split("/")
    if len(parts) != 3 or parts[0] != "layer_12" or parts[2] != "canonical" or not parts[1].startswith("width_"):
        raise ValueError(f"the hub mirror only has layer_12/width_*/canonical Gemma Scope ids, not {sae_id!r}")
    width = parts[1].removeprefix("width_")
    if width not in GEMMA_SCOPE_L12_CANONICAL:
        raise ValueError(f"no canonical Gemma Scope layer-12 SAE of width {width}")
    return width


def paper_config_paths() -> list[Path]:
    """The packaged paper sweep configs (src/saedetox/configs/paper/*.yaml)."""
    return sorted(Path(str(files("saedetox") / "configs" / "paper")).glob("*.yaml"))


def paper_saes(gemma_widths: Iterable[str] | None = None) -> list[str]:
    """Every SAE id the paper configs name (``sae`` and ``splitting.saes``), in order.

    ``gemma_widths`` keeps only those Gemma Scope widths (e.g. ``("16k",)``: the wider ones have real
    shapes, 0.6-4.8 GB per fp32 copy when loaded); None keeps all.
    """
    names: list[str] = []
    for path in paper_config_paths():
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        names += [raw["sae"], *((raw.get("splitting") or {}).get("saes") or [])]
    keep = None if gemma_widths is None else set(gemma_widths)
    out = [
        n
        for n in dict.fromkeys(names)
        if keep is None or not n.startswith(GEMMA_SCOPE + "/") or gemma_scope_width(n.split("/", 1)[1]) in keep
    ]
    return out


def gemma_tokenizer_texts(n_pairs: int = 3000) -> list[str]:
    """What the Gemma stand-in's BPE is trained on: the calibration texts and ParaDetox's LM-role pairs.

    Trained on English like the evaluation's, it needs ~1.5x GPT-2's token count (a tokenizer trained on
    one paragraph needs ~3x), which keeps every Gemma forward pass in the tests short.
    """
    pairs = paradetox_by_role()["lm"][:n_pairs]
    return [*CALIBRATION_TEXTS, *(p.toxic for p in pairs), *(p.neutral for p in pairs)]


def default_gpt2_tokenizer_dir() -> Path:
    """The original GPT-2 BPE files in the shared data (read at test time, never committed)."""
    return data_file("gpt2_tokenizer/vocab.json").parent


@dataclass
class Mirror:
    """A built mirror: where each repo's snapshot is, how long each part took, which SAEs it holds."""

    cache_dir: Path
    snapshots: dict[str, Path] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    saes: list[str] = field(default_factory=list)

    def file(self, repo_id: str, relpath: str) -> Path:
        return self.snapshots[repo_id] / relpath

    def remove(self, repo_id: str, relpath: str) -> Path:
        """Delete one file from the snapshot (its blob stays, as after an interrupted download)."""
        p = self.file(repo_id, relpath)
        p.unlink()
        return p

    @contextlib.contextmanager
    def hidden(self, repo_id: str, relpath: str) -> Iterator[Path]:
        """Remove one snapshot file for the duration of the block, then put the same link back."""
        p = self.file(repo_id, relpath)
        target = os.readlink(p) if p.is_symlink() else None
        data = None if target is not None else p.read_bytes()
        p.unlink()
        try:
            yield p
        finally:
            if target is not None:
                p.symlink_to(target)
            else:
                p.write_bytes(data or b"")

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.cache_dir.rglob("*") if p.is_file() and not p.is_symlink())

    @contextlib.contextmanager
    def active(self, offline: bool = True) -> Iterator[Mirror]:
        restore = activate(self.cache_dir, offline=offline)
        try:
            yield self
        finally:
            restore()


def build_mirror(
    cache_dir: str | os.PathLike[str],
    *,
    saes: Iterable[str] = DEFAULT_SAES,
    models: Iterable[str] = MODELS,
    full: bool | Iterable[str] = False,
    seed: int = 0,
    layout: str = "blobs",
    gpt2_tokenizer_dir: str | os.PathLike[str] | None = None,
    gemma_vocab_size: int = GEMMA_STAND_IN_VOCAB,
    gemma_scope_compress: bool | None = None,
) -> Mirror:
    """Write the stand-ins into ``cache_dir`` (an HF hub cache folder) and return a :class:`Mirror`.

    ``saes``: registry names (``release/sae_id``) of the three mirrored releases. Gemma Scope widths
    above 16k have their real shapes whatever ``full`` says (0.6 GB per fp32 copy at 32k, 4.8 GB at
    262k when loaded): only ask for them where the memory is. ``full``: True or a subset of
    ``FULL_PARTS`` (``{"gpt2"}`` = GPT-2 Small at 768 × 12 layers, which also gives its SAEs their real
    d_in/d_sae; ``"gemma-scope"`` = dense npz). Full Gemma-2 models are 10 GB (2B) and 37 GB (9B).
    """
    parts = set(FULL_PARTS) if full is True else set(full or ())
    unknown = parts - set(FULL_PARTS)
    if unknown:
        raise ValueError(f"unknown full parts {sorted(unknown)}; choose from {FULL_PARTS}")
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    models = list(models)
    names = list(dict.fromkeys(saes))
    by_release: dict[str, list[str]] = {RES_JB: [], FS: [], GEMMA_SCOPE: []}
    for name in names:
        sae_location(name)  # unknown names fail here, before anything is written
        release, _, sae_id = name.partition("/")
        by_release[release].append(sae_id)
    mirror = Mirror(cache, saes=names)

    def timed(key: str, fn: Callable[[], Path]) -> None:
        t0 = time.perf_counter()
        mirror.snapshots[key] = fn()
        mirror.timings[key] = round(time.perf_counter() - t0, 3)

    gpt2 = [m for m in models if m.startswith("gpt2")]
    if gpt2:
        tok_dir = Path(gpt2_tokenizer_dir) if gpt2_tokenizer_dir is not None else default_gpt2_tokenizer_dir()
        for m in gpt2:
            timed(m, lambda m=m: write_gpt2(cache, m, full=m in parts, seed=seed, tokenizer_dir=tok_dir, layout=layout))
    gemma = [m for m in models if m.startswith("google/gemma-2")]
    if gemma:
        # one tokenizer for both Gemma repos: the real 256000 entries (padded with <unusedN>) when one is full
        vocab = REAL_CONFIGS[gemma[0]]["vocab_size"] if parts & set(gemma) else gemma_vocab_size
        tok = gemma_tokenizer_files(vocab, gemma_tokenizer_texts())
        for m in gemma:
            timed(
                m,
                lambda m=m: write_gemma(
                    cache, m, full=m in parts, seed=seed, layout=layout, tokenizer=tok, vocab_size=vocab
                ),
            )
    # the SAE-Lens loader takes d_in/d_sae from cfg.json: the GPT-2 SAEs follow the gpt2 stand-in's width
    gpt2_full = "gpt2" in parts
    width = (REAL_CONFIGS if gpt2_full else SMALL_OVERRIDES)["gpt2"]["n_embd"]
    if by_release[RES_JB]:
        hooks = by_release[RES_JB]
        timed(RES_JB_REPO, lambda: write_res_jb(cache, hooks, d_in=width, full=gpt2_full, seed=seed, layout=layout))
    if by_release[FS]:
        widths = [int(i.rsplit("_", 1)[1]) for i in by_release[FS]]
        timed(
            FS_REPO,
            lambda: write_feature_splitting(cache, widths, d_in=width, full=gpt2_full, seed=seed, layout=layout),
        )
    if by_release[GEMMA_SCOPE]:
        gs = [gemma_scope_width(i) for i in by_release[GEMMA_SCOPE]]
        dense = "gemma-scope" in parts
        timed(
            GEMMA_SCOPE_REPO,
            lambda: write_gemma_scope(cache, gs, seed=seed, layout=layout, dense=dense, compress=gemma_scope_compress),
        )
    return mirror


_ENV_KEYS = ("HF_HUB_CACHE", "HF_HUB_OFFLINE")


def activate(cache_dir: str | os.PathLike[str], offline: bool = True) -> Callable[[], None]:
    """Point huggingface_hub (and everything built on it) at ``cache_dir``; return a restore function.

    Sets the environment (read by libraries imported later) and patches ``huggingface_hub.constants``
    (read at call time by hf_hub_download, try_to_load_from_cache, transformers' cached_files and
    is_offline_mode). Not patched, because off saedetox's path: copies taken at import by
    ``transformer_lens.utilities.hf_utils`` and ``huggingface_hub.utils._cache_manager`` (scan_cache_dir).
    """
    saved_env = {k: os.environ.get(k) for k in _ENV_KEYS}
    saved = {"HF_HUB_CACHE": hf_constants.HF_HUB_CACHE, "HF_HUB_OFFLINE": hf_constants.HF_HUB_OFFLINE}
    os.environ["HF_HUB_CACHE"] = str(cache_dir)
    hf_constants.HF_HUB_CACHE = str(cache_dir)
    if offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
        hf_constants.HF_HUB_OFFLINE = True

    def restore() -> None:
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        for k, v in saved.items():
            setattr(hf_constants, k, v)

    return restore
