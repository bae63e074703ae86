"""Content identities for run fingerprints: models, tokenizers, SAEs, judges, methods — never paths.

Each identity is a short hex digest of what determines the numbers, so a renamed or copied
model, SAE or run folder keeps its identity and a changed one does not:

* **Tensors** (model and SAE weights): per tensor its name, shape, dtype, an exact integer
  checksum of *every* element (the bits summed as integers: order-independent, so identical on
  any machine) and the bits of up to 1,024 evenly spaced elements. One pass over the weights,
  no hashing of gigabytes; a fine-tune, a folded steering vector or a single edited row changes it.
* **Models**: the config (without paths and library versions), the class, the weights as above
  and the tokenizer (its full serialisation, special tokens and padding side).
* **SAEs**: the SAE-Lens config (without the device), the conventions saedetox applies
  (centring, BOS) and the weights.
* **Judges**: the probe judge's files, the installed version of a package judge.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import math
from collections.abc import Iterable
from typing import Any

import torch

from saedetox.judges.probe import PROBE_CONFIG, PROBE_DIR, PROBE_WEIGHTS
from saedetox.methods.base import Method
from saedetox.model.load import LoadedModel
from saedetox.sae.loaded import LoadedSAE
from saedetox.steering.steerer import Steerer

SAMPLE = 1024
_INT_VIEW = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def digest(obj: Any) -> str:
    """A 16-hex-digit digest of a JSON-able object (floats normalised, keys sorted)."""
    text = json.dumps(normalise(obj), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def normalise(obj: Any) -> Any:
    """JSON-able form with floats at 7 significant digits, so derived values (α, a median norm) that
    differ only in float rounding between machines do not read as a changed setting."""
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        return obj if not math.isfinite(obj) else float(f"{obj:.7g}")
    if isinstance(obj, dict):
        return {str(k): normalise(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [normalise(v) for v in obj]
    if hasattr(obj, "tolist"):
        return normalise(obj.tolist())
    return str(obj)


@torch.no_grad()
def tensor_digest(named: Iterable[tuple[str, torch.Tensor]]) -> str:
    """Identity of named tensors: shapes, dtypes, an exact integer checksum of every element, and a sample."""
    h = hashlib.sha256()
    for name, t in named:
        t = t.detach()
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        if t.numel() == 0 or t.device.type == "meta":
            continue
        flat = t.reshape(-1)
        bits = flat.view(_INT_VIEW[flat.element_size()]) if flat.is_floating_point() else flat.to(torch.int64)
        h.update(str(int(bits.sum(dtype=torch.int64))).encode())
        step = max(1, flat.numel() // SAMPLE)
        h.update(bits[::step][:SAMPLE].cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def tokenizer_identity(tok: Any) -> str:
    if tok is None:
        return "none"
    backend = getattr(tok, "backend_tokenizer", None)
    body = backend.to_str() if backend is not None else json.dumps(sorted(tok.get_vocab().items()))
    extra = [type(tok).__name__, tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, tok.padding_side]
    return hashlib.sha256((body + json.dumps(extra, default=str)).encode()).hexdigest()[:16]


def model_identity(lm: LoadedModel) -> str:
    """What the model computes: config, class, weights (see the module docstring) and tokenizer."""
    cfg = {
        k: v
        for k, v in lm.model.config.to_dict().items()
        if not k.startswith("_") and k not in ("transformers_version", "name_or_path")
    }
    weights = tensor_digest(lm.model.state_dict().items())
    return digest([type(lm.model).__name__, cfg, weights, tokenizer_identity(lm.tokenizer)])


def sae_identity(sae: LoadedSAE) -> str:
    """What the SAE computes: its config (not the device or where it was read from) and weights."""
    cfg = sae.sae.cfg.to_dict() if hasattr(sae.sae.cfg, "to_dict") else dict(vars(sae.sae.cfg))
    cfg = {k: v for k, v in cfg.items() if k not in ("device", "neuronpedia_id")}
    conventions = {"center": sae.center, "prepend_bos": sae.prepend_bos, "hook": sae.hook_name}
    return digest([cfg, conventions, tensor_digest(sae.sae.state_dict().items())])


def judge_identity(name: str) -> str:
    """The probe judge's files, or the judge's package and version (a package judge's weights come with it)."""
    key = name.strip().lower()
    if key == "probe":
        h = hashlib.sha256()
        for f in (PROBE_CONFIG, PROBE_WEIGHTS):
            path = PROBE_DIR / f
            h.update(path.read_bytes() if path.is_file() else b"missing")
        return h.hexdigest()[:16]
    package = {"profanity": "alt-profanity-check", "perspective": "requests"}.get(key, "detoxify")
    try:
        return f"{key} {package} {md.version(package)}"
    except md.PackageNotFoundError:
        return f"{key} {package} (not installed)"


def steerer_of(method: Method) -> Steerer | None:
    """The :class:`Steerer` a steering method attaches, if any (its context or its stats belong to one)."""
    owner = getattr(method.stats, "__self__", None)
    if isinstance(owner, Steerer):
        return owner
    ctx = method.context()  # a context manager object; nothing runs until it is entered
    return ctx if isinstance(ctx, Steerer) else None


def method_settings(method: Method) -> tuple[dict[str, Any], dict[str, str]]:
    """Flat fingerprint settings of a method, and labels for messages.

    Everything the method says about itself (``details``) counts, except SAE names, which are
    replaced by the SAEs' content identities; a steering method also contributes its full spec
    (latents, gates, detector, strengths, positions, clamp value, raw vectors) and the resolved
    strength and median norm of every intervention.
    """
    details = dict(method.details)
    labels: dict[str, str] = {}
    sae_label = details.pop("sae", None)
    out: dict[str, Any] = {"method": method.name, "method.prefix": method.prefix}
    flatten("method", details, out)
    steerer = steerer_of(method)
    if steerer is not None:
        spec = steerer.spec.to_dict()
        for i, (iv, r) in enumerate(zip(spec["interventions"], steerer.resolved, strict=True)):
            if r.sae is not None:
                iv["sae"] = None
                out[f"method.sae.{i}"] = sae_identity(r.sae)
                labels[f"method.sae.{i}"] = r.sae.source
            iv["resolved"] = {"hook": r.hook, "alpha": r.alpha, "median_norm": r.median_norm}
        out["method.spec"] = digest(spec)
    elif sae_label is not None:
        out["method.sae"] = str(sae_label)
    return out, labels


def flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    """Nested dicts (and lists of dicts) as dotted keys; other values normalised."""
    if isinstance(value, dict):
        for k, v in value.items():
            flatten(f"{prefix}.{k}", v, out)
    elif isinstance(value, (list, tuple)) and value and all(isinstance(v, dict) for v in value):
        for i, v in enumerate(value):
            flatten(f"{prefix}.{i}", v, out)
    else:
        out[prefix] = normalise(value)
