"""Saving a model folder atomically: a folder appears whole or not at all, and replacing one never leaves a mix.

The checkpoint is written to a temporary folder beside the target and renamed into place. A
non-empty target is refused unless ``overwrite``; overwriting swaps the new folder in with one
atomic exchange (Linux ``renameat2(RENAME_EXCHANGE)``) and then deletes the old one, so an index
never points at deleted shards. Where the exchange is unavailable the old folder is renamed aside
first; a crash between the two renames leaves it beside the target (``.NAME.old-*``), and the next
export to that target puts it back before starting. Leftover temporary folders of a killed
export are removed by the next one. One writer per target (:func:`saedetox.io.folder_lock`).

The saved tokenizer adds BOS the way saedetox's own generation does (:func:`~saedetox.model.tokens.tokenize_batch`
prepends it; GPT-2 style tokenizers do not add it by themselves), so plain ``tokenizer(prompt)`` +
``model.generate`` on the folder sees the same tokens the steering was computed on. The tokenizer is
reloaded with ``AutoTokenizer`` before the folder is moved into place, and an export whose tokenizer
would encode differently is refused.
"""

from __future__ import annotations

import copy
import ctypes
import json
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import torch
from torch import nn

from saedetox.errors import SaedetoxError
from saedetox.io import folder_lock, full_disk_named
from saedetox.model.tokens import tokenize_batch
from saedetox.progress import note
from saedetox.version import __version__

PROVENANCE_FILE = "saedetox_export.json"
_PROBE = "Hello there, how are you"  # what the reloaded tokenizer is checked on


class TargetNotEmpty(SaedetoxError):
    """The export target holds files and overwriting was not asked for."""


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _leftovers(out: Path) -> None:
    """Remove a killed export's temporary folders; put back a previous folder a crash left aside."""
    if not out.parent.exists():
        return
    for p in sorted(out.parent.iterdir()):
        if p.name.startswith(f".{out.name}.export-"):
            shutil.rmtree(p, ignore_errors=True)
        elif p.name.startswith(f".{out.name}.old-"):
            if out.exists():
                shutil.rmtree(p, ignore_errors=True)
            else:
                os.rename(p, out)


def _swap_in(tmp: Path, out: Path) -> None:
    if not out.exists():
        os.rename(tmp, out)
        return
    if _exchange(tmp, out):  # tmp now holds the old folder
        shutil.rmtree(tmp, ignore_errors=True)
        return
    old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
    os.rename(out, old)
    os.rename(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def save_checkpoint(
    model: nn.Module,
    tokenizer: Any,
    out: str | os.PathLike[str],
    meta: dict[str, Any],
    overwrite: bool = False,
    dtype: torch.dtype | None = None,
    source: str | None = None,
    max_shard_size: str | int | None = None,
) -> Path:
    """Write ``model`` (converted to ``dtype`` in place if given), its tokenizer and ``meta`` as a plain HF folder.

    ``meta`` goes to ``saedetox_export.json`` with the saedetox version added. ``source`` (the folder
    the model was loaded from, if any) may not be the target.
    """
    out = Path(out).expanduser()
    if source is not None and Path(source).expanduser().exists() and out.resolve() == Path(source).resolve():
        raise SaedetoxError(f"Export target {out} is the folder the model was loaded from; export to another folder.")
    with folder_lock(out, "export"):
        _leftovers(out)
        if out.exists() and not out.is_dir():
            raise SaedetoxError(f"Export target {out} exists and is not a folder.")
        if out.exists() and any(out.iterdir()) and not overwrite:
            raise TargetNotEmpty(f"Export target {out} is not empty; export to a new folder or allow overwriting it.")
        note(f"writing {out}")
        with full_disk_named(out, _size(model)):
            _write(model, tokenizer, out, meta, overwrite, dtype, max_shard_size)
    return out


def _write(
    model: nn.Module,
    tokenizer: Any,
    out: Path,
    meta: dict[str, Any],
    overwrite: bool,
    dtype: torch.dtype | None,
    max_shard_size: str | int | None,
) -> None:
    """The folder written beside ``out`` and swapped in (the caller holds the lock)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.export-", dir=out.parent))
    try:
        if dtype is not None:
            model = model.to(dtype)
        kwargs: dict[str, Any] = {"safe_serialization": True}
        if max_shard_size is not None:
            kwargs["max_shard_size"] = max_shard_size
        model.save_pretrained(tmp, **kwargs)
        if tokenizer is not None:
            save_tokenizer(tokenizer, tmp)
        full = {"saedetox_version": __version__, **meta}
        (tmp / PROVENANCE_FILE).write_text(json.dumps(full, indent=2) + "\n", encoding="utf-8")
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; an export is an ordinary folder
        _swap_in(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _adds_bos(tokenizer: Any) -> bool:
    ids = tokenizer(_PROBE)["input_ids"]
    return bool(ids) and ids[0] == tokenizer.bos_token_id


def bos_tokenizer(tokenizer: Any) -> Any:
    """``tokenizer``, or a copy of it that adds BOS where saedetox prepends it (the input is left untouched)."""
    if tokenizer.bos_token_id is None or _adds_bos(tokenizer):
        return tokenizer
    tok = copy.deepcopy(tokenizer)
    tok.add_bos_token = True  # transformers rebuilds the TemplateProcessing post-processor saved in tokenizer.json
    if not _adds_bos(tok):
        raise SaedetoxError(
            f"{type(tokenizer).__name__} cannot be set to add its BOS token, so the exported tokenizer would encode "
            "prompts differently from saedetox; export with a fast (tokenizers) tokenizer."
        )
    return tok


def save_tokenizer(tokenizer: Any, folder: Path) -> None:
    """Save the BOS-adding tokenizer and check that ``AutoTokenizer`` reads it back encoding as saedetox does."""
    from transformers import AutoTokenizer

    tok = bos_tokenizer(tokenizer)
    tok.save_pretrained(folder)
    cfg_path = folder / "tokenizer_config.json"
    if tok is not tokenizer and cfg_path.exists():  # the flag too, for readers that rebuild the post-processor
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        cfg["add_bos_token"] = True
        cfg_path.write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
    expected = tokenize_batch(tokenizer, [_PROBE])["input_ids"][0].tolist()
    got = list(AutoTokenizer.from_pretrained(folder)(_PROBE)["input_ids"])
    if got != expected:
        raise SaedetoxError(
            f"The exported tokenizer encodes a prompt as {got[:6]}… but saedetox steers on {expected[:6]}…; "
            "this tokenizer cannot be exported faithfully."
        )


def _size(model: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
