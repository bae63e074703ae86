"""The folder vLLM loads for a run: the model's own files, or the weights a method edited.

vLLM loads a model from a folder (or a hub name it resolves in the local cache); saedetox has the
model in memory. :func:`model_folder` gives the folder holding exactly the weights in memory:

* the model's own folder when ``lm`` was loaded from one (``reference`` = the committed LM), or the
  snapshot in the local Hugging Face cache that a hub name was loaded from;
* otherwise (a model built in memory, or weights a method edits, such as Model Surgery) the model
  saved, under the method's edit, into a temporary folder removed on exit.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch

from saedetox.model.load import REFERENCE_NAME, LoadedModel, reference_model_dir

_DTYPES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}


def vllm_dtype(lm: LoadedModel) -> str:
    """The dtype name vLLM takes for the model's parameters."""
    return _DTYPES.get(lm.dtype, "auto")


def own_folder(lm: LoadedModel) -> str | None:
    """The local folder ``lm`` was loaded from (a hub name: its cached snapshot), or None."""
    if lm.name == REFERENCE_NAME:
        return str(reference_model_dir())
    local = Path(lm.name).expanduser()
    if (local / "config.json").is_file():
        return str(local.resolve())
    if local.exists():
        return None
    try:
        from huggingface_hub import snapshot_download  # deferred: only hub names reach it

        snap = Path(snapshot_download(lm.name, local_files_only=True))
    except Exception:  # not a hub name, or not in the cache: the weights are saved instead
        return None
    return str(snap) if (snap / "config.json").is_file() else None


@contextmanager
def model_folder(lm: LoadedModel, edit: Callable[[], AbstractContextManager[Any]] | None = None) -> Iterator[str]:
    """A folder holding ``lm``'s weights (under ``edit``, a method's weight edit, when given)."""
    own = own_folder(lm) if edit is None else None
    if own is not None:
        yield own
        return
    with tempfile.TemporaryDirectory(prefix="saedetox-vllm-model-") as tmp:
        with edit() if edit is not None else nullcontext():
            lm.model.save_pretrained(tmp, safe_serialization=True)
        lm.tokenizer.save_pretrained(tmp)
        yield tmp
