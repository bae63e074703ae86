"""SAE stand-ins: SAE-Lens folders (``gpt2-small-res-jb``, feature splitting) and Gemma Scope ``params.npz``."""

from __future__ import annotations

import contextlib
import io
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
from safetensors.numpy import save_file

from .cache import RepoWriter, rng_for
from .facts import (
    FS_REPO,
    GEMMA_2B_D_IN,
    GEMMA_SCOPE_L12_CANONICAL,
    GEMMA_SCOPE_REPO,
    GEMMA_WIDTHS,
    RES_JB_D_SAE,
    RES_JB_REPO,
    fs_cfg,
    res_jb_cfg,
)

PRE_ACT_STD = 0.11  # std of w·x for a unit w on the default gpt2 stand-in's centred blocks.6 residual
TARGET_L0 = 40  # the registry's expected L0 of these releases is 36-51 at every width


def _standard_sae_tensors(d_in: int, d_sae: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Unit decoder rows, W_enc = W_dec.T, and b_enc set so that about TARGET_L0 latents fire per token.

    A latent fires when w·x > -b_enc, i.e. with probability p = min(1/4, TARGET_L0 / d_sae) for
    w·x ~ N(0, PRE_ACT_STD²): the narrowest feature-splitting stand-in (64 latents) fires too, so
    discovery finds latents at every width instead of none at the narrow end.
    """
    w_dec = rng.standard_normal((d_sae, d_in), dtype=np.float32)
    w_dec /= np.linalg.norm(w_dec, axis=1, keepdims=True)
    w_enc = np.ascontiguousarray(w_dec.T)
    p = min(0.25, TARGET_L0 / d_sae)
    cut = PRE_ACT_STD * NormalDist().inv_cdf(1.0 - p)
    return {
        "W_enc": w_enc,
        "W_dec": w_dec,
        "b_enc": (-cut - 0.01 * np.abs(rng.standard_normal(d_sae))).astype(np.float32),
        "b_dec": (0.01 * rng.standard_normal(d_in)).astype(np.float32),
    }


def _write_saelens_folder(repo: RepoWriter, folder: str, cfg: dict[str, Any], rng: np.random.Generator) -> None:
    repo.write_json(f"{folder}/cfg.json", cfg, indent=None)
    save_file(
        _standard_sae_tensors(cfg["d_in"], cfg["d_sae"], rng), str(repo.path(f"{folder}/sae_weights.safetensors"))
    )
    log_sparsity = (-2.5 + 0.5 * rng.standard_normal(cfg["d_sae"])).astype(np.float32)
    save_file({"sparsity": log_sparsity}, str(repo.path(f"{folder}/sparsity.safetensors")))


def write_res_jb(cache_dir: Path, hooks: Iterable[str], *, d_in: int, full: bool, seed: int, layout: str) -> Path:
    repo = RepoWriter(cache_dir, RES_JB_REPO, layout)
    for hook in hooks:
        d_sae = RES_JB_D_SAE if full else RES_JB_D_SAE * d_in // 768
        _write_saelens_folder(repo, hook, res_jb_cfg(hook, d_in, d_sae), rng_for(seed, RES_JB_REPO + hook))
    return repo.commit()


def write_feature_splitting(
    cache_dir: Path, widths: Iterable[int], *, d_in: int, full: bool, seed: int, layout: str
) -> Path:
    repo = RepoWriter(cache_dir, FS_REPO, layout)
    for width in widths:
        folder = f"blocks.8.hook_resid_pre_{width}"
        d_sae = width if full else max(width * d_in // 768, 1)
        _write_saelens_folder(repo, folder, fs_cfg(width, d_in, d_sae), rng_for(seed, FS_REPO + folder))
    return repo.commit()


# --------------------------------------------------------------------------- Gemma Scope (params.npz)


def _npy_header(shape: tuple[int, ...], dtype: str = "<f4") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue()


@contextlib.contextmanager
def _rle_deflate() -> Iterator[None]:
    """zipfile's deflater with zlib's Z_RLE strategy: ~1.5x faster and smaller on mostly-zero arrays.

    Still plain deflate (method 8): np.load / any unzip reads it. Patches a private zipfile hook
    (present since Python 3.3); without it, falls back to the default strategy.
    """
    orig = getattr(zipfile, "_get_compressor", None)
    if orig is None:
        yield
        return

    def rle(compress_type: int, compresslevel: int | None = None):  # type: ignore[no-untyped-def]
        if compress_type == zipfile.ZIP_DEFLATED:
            return zlib.compressobj(compresslevel or 9, zlib.DEFLATED, -15, 9, zlib.Z_RLE)
        return orig(compress_type, compresslevel)

    zipfile._get_compressor = rle  # type: ignore[attr-defined]
    try:
        yield
    finally:
        zipfile._get_compressor = orig  # type: ignore[attr-defined]


def write_gemma_scope_npz(
    path: Path,
    d_in: int,
    d_sae: int,
    rng: np.random.Generator,
    *,
    k: int = 8,
    dense: bool = False,
    compress: bool | None = None,
) -> None:
    """params.npz with the real keys/shapes/dtypes: W_enc [d_in,d_sae], W_dec [d_sae,d_in], b_enc, b_dec, threshold.

    ``dense=False``: each latent reads/writes k random dims (unit-norm decoder rows, W_enc = W_dec.T),
    so the deflated file is ~150x smaller than the real one; written in row blocks, never whole.
    ``dense=True``: dense Gaussian weights (incompressible). ``compress`` defaults to ``not dense``;
    ``compress=False`` stores the members like the published files do (np.savez): 302 MB for 16k but
    np.load is ~3x faster (no inflate).
    """
    compress = (not dense) if compress is None else compress
    rows_per_block = 1024
    if not dense:
        idx = rng.integers(0, d_in, size=(d_sae, k))
        val = rng.standard_normal((d_sae, k)).astype(np.float32)
        val /= np.linalg.norm(val, axis=1, keepdims=True)
    dense_rng = np.random.default_rng(int(rng.integers(1 << 62)))
    ctx = _rle_deflate() if compress else contextlib.nullcontext()
    comp = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with ctx, zipfile.ZipFile(path, "w", compression=comp, allowZip64=True) as zf:
        # W_enc [d_in, d_sae], C order: row r = input dim r
        with zf.open("W_enc.npy", "w", force_zip64=True) as fh:
            fh.write(_npy_header((d_in, d_sae)))
            step = max(1, (rows_per_block * d_in) // d_sae)
            buf = np.zeros((step, d_sae), dtype=np.float32)
            for r0 in range(0, d_in, step):
                r1 = min(r0 + step, d_in)
                block = buf[: r1 - r0]
                if dense:
                    block[:] = dense_rng.standard_normal(block.shape, dtype=np.float32) / np.sqrt(d_in)
                else:
                    block[:] = 0.0
                    m = (idx >= r0) & (idx < r1)
                    np.add.at(block, (idx[m] - r0, np.nonzero(m)[0]), val[m])
                fh.write(memoryview(block).cast("B"))
        with zf.open("W_dec.npy", "w", force_zip64=True) as fh:
            fh.write(_npy_header((d_sae, d_in)))
            buf = np.zeros((rows_per_block, d_in), dtype=np.float32)
            for r0 in range(0, d_sae, rows_per_block):
                r1 = min(r0 + rows_per_block, d_sae)
                block = buf[: r1 - r0]
                if dense:
                    block[:] = dense_rng.standard_normal(block.shape, dtype=np.float32)
                    block /= np.linalg.norm(block, axis=1, keepdims=True)
                else:
                    block[:] = 0.0
                    np.add.at(block, (np.repeat(np.arange(r1 - r0), k), idx[r0:r1].ravel()), val[r0:r1].ravel())
                fh.write(memoryview(block).cast("B"))
        small = {
            "b_enc": (0.01 * rng.standard_normal(d_sae)).astype(np.float32),
            "b_dec": (0.01 * rng.standard_normal(d_in)).astype(np.float32),
            # default Gemma stand-in: layer-12 pre-acts std ~5, 99.5% quantile ~13 -> L0 of a few dozen
            "threshold": rng.uniform(12.0, 16.0, d_sae).astype(np.float32),
        }
        for name, arr in small.items():
            with zf.open(f"{name}.npy", "w") as fh:
                np.lib.format.write_array(fh, arr)


def write_gemma_scope(
    cache_dir: Path,
    widths: Iterable[str],
    *,
    seed: int,
    layout: str,
    dense: bool = False,
    compress: bool | None = None,
) -> Path:
    repo = RepoWriter(cache_dir, GEMMA_SCOPE_REPO, layout)
    for w in widths:
        folder = GEMMA_SCOPE_L12_CANONICAL[w]
        write_gemma_scope_npz(
            repo.path(f"{folder}/params.npz"),
            GEMMA_2B_D_IN,
            GEMMA_WIDTHS[w],
            rng_for(seed, folder),
            dense=dense,
            compress=compress,
        )
    return repo.commit()
