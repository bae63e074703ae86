"""The ``detoxify`` judges (optional package): Detoxify's ``toxicity`` class."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from saedetox.errors import SaedetoxError
from saedetox.judges.base import batches, finish


class DetoxifyJudge:
    """Detoxify's ``toxicity`` class. Offline: pass a local ``checkpoint`` and ``huggingface_config_path``.

    Both also come from ``$SAEDETOX_DETOXIFY_CHECKPOINT`` / ``$SAEDETOX_DETOXIFY_CONFIG`` when not given.
    """

    def __init__(
        self,
        model_type: str = "original",
        checkpoint: str | None = None,
        huggingface_config_path: str | None = None,
        device: str | None = None,
        batch_size: int = 32,
        name: str = "detoxify",
    ) -> None:
        try:
            from detoxify import Detoxify  # deferred: optional package (pip install detoxify)
        except ImportError:
            raise SaedetoxError(f"The {name} judge needs the detoxify package: pip install detoxify.") from None
        checkpoint = checkpoint or os.environ.get("SAEDETOX_DETOXIFY_CHECKPOINT") or None
        config = huggingface_config_path or os.environ.get("SAEDETOX_DETOXIFY_CONFIG") or None
        for what, p in (("checkpoint", checkpoint), ("huggingface_config_path", config)):
            if p is not None and not Path(p).exists():
                raise SaedetoxError(f"Detoxify {what} {p} does not exist.")
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self._model = Detoxify(model_type, checkpoint=checkpoint, device=device, huggingface_config_path=config)
        except OSError as err:  # URLError, requests/hub connection errors and missing-file errors are all OSError
            base = "roberta-base" if model_type.startswith("unbiased") else "bert-base-uncased"
            raise SaedetoxError(
                f"Detoxify could not load its '{model_type}' checkpoint or Hugging Face base config "
                f"({type(err).__name__}; offline?): download the .ckpt elsewhere and pass checkpoint=PATH "
                f"(or $SAEDETOX_DETOXIFY_CHECKPOINT), pass huggingface_config_path=DIR holding {base}'s "
                "config and tokenizer files (or $SAEDETOX_DETOXIFY_CONFIG), and set HF_HUB_OFFLINE=1."
            ) from None
        self.name, self.batch_size = name, batch_size

    def score(self, texts: Sequence[str]) -> np.ndarray:
        out: list[float] = []
        for batch in batches(texts, self.batch_size):
            out.extend(float(v) for v in np.asarray(self._model.predict(batch)["toxicity"]).reshape(-1))
        return finish(out, len(texts))
