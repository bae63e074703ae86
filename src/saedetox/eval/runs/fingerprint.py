"""A run's fingerprint: every setting that changes a number, so a finished run is reused only when all match.

The settings are a flat mapping (``clean_texts``, ``top_p``, ``model``, ``method.alpha``,
``judge.probe`` …) whose digest is the run's fingerprint; content (prompts, clean texts, model
and SAE weights, features, judges' files) enters as content identities
(:mod:`saedetox.eval.runs.identity`), never as paths, so a renamed or copied run folder, model or SAE
keeps its fingerprint. Left out on purpose: the run's folder and name, the data directory's
path (the prompts and texts read from it count by content), the device index (the device *type*
counts: CPU and CUDA draw different random numbers) and progress output. Everything in
:class:`~saedetox.eval.config.EvalConfig` counts, including ``ppl_batch_size``: batch
composition changes padding and with it float sums in the last digits (measured: conditional
PPL 3402.2456 with batch 1, 3402.2459 with batch 32).

``generation`` is the digest of the settings the continuations depend on; when only judges
differ from a finished run, its continuations are reused and rescored.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from saedetox.data.attacks import attack_identity
from saedetox.data.readers import Prompt
from saedetox.eval.config import EvalConfig
from saedetox.eval.metrics.capability import TASKS_DIR
from saedetox.eval.runs.identity import digest, judge_identity, method_settings, model_identity, normalise
from saedetox.methods.base import Method
from saedetox.model.load import LoadedModel

#: bump when a change in saedetox changes the numbers a run with the same settings produces
PROTOCOL_VERSION = 2

#: the settings the continuations depend on (prefixes of setting keys)
GENERATION = (
    "protocol",
    "model",
    "device",
    "prompts",
    "n_prompts",
    "seed",
    "samples",
    "max_new_tokens",
    "top_p",
    "temperature",
    "batch_size",
    "prepend_bos",
    "do_sample",
    "use_cache",
    "chat",
    "attack",
    "method",
    "config",
)
#: settings a finished run may change without --overwrite: its continuations are rescored
JUDGES = ("judges", "judge")
#: run_config keys that only label a run (its name, the curve it belongs to)
LABELS = ("run", "curve", "level")


def _is(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


@dataclass
class Fingerprint:
    settings: dict[str, Any]
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def hash(self) -> str:
        return digest(self.settings)

    @property
    def generation(self) -> str:
        return digest({k: v for k, v in self.settings.items() if _is(k, GENERATION)})

    def to_dict(self) -> dict[str, Any]:
        return {
            "hash": self.hash,
            "generation": self.generation,
            "protocol": PROTOCOL_VERSION,
            "settings": self.settings,
            "labels": self.labels,
        }

    @classmethod
    def from_dict(cls, obj: Any) -> Fingerprint | None:
        """A stored fingerprint block, or None if ``obj`` is not one (a run from an older saedetox)."""
        if not isinstance(obj, dict) or not isinstance(obj.get("settings"), dict):
            return None
        return cls(dict(obj["settings"]), dict(obj.get("labels") or {}))


def texts_digest(texts: list[str]) -> str:
    return hashlib.sha256(json.dumps(texts).encode()).hexdigest()[:16]


def protocol_settings(
    cfg: EvalConfig, prompts: list[Prompt], clean: list[str], data_dir: str | None = None
) -> Fingerprint:
    """The settings known without a model: the protocol, the prompts and clean texts (by content), the judges,
    and the attack (its name and the hash of its definition and sentence pool; absent for a clean run)."""
    s: dict[str, Any] = {"protocol": PROTOCOL_VERSION}
    labels: dict[str, str] = {}
    s["prompts"] = digest([asdict(p) for p in prompts])
    labels["prompts"] = f"{cfg.prompts} ({len(prompts)} prompts)"
    s["n_prompts"] = len(prompts)
    sampling = asdict(cfg.sampling)
    if not sampling["chat"]:
        del sampling["chat"]  # runs without chat keep the fingerprint they had before chat prompts existed
    s["samples"] = sampling.pop("n_samples")
    s.update(sampling)
    if cfg.attack is not None:
        s["attack"] = cfg.attack
        s["attack.pool"] = attack_identity(cfg.attack, data_dir)
        labels["attack"] = cfg.attack
    s["judges"] = list(cfg.judges)
    for j in cfg.judges:
        s[f"judge.{j}"] = judge_identity(j)
    s["threshold"] = cfg.threshold
    s["n_boot"] = cfg.n_boot
    s["clean_texts"] = cfg.clean_texts
    if cfg.clean_texts:
        s["clean_texts.content"] = texts_digest(clean)
    s["capability"] = list(cfg.capability)
    if cfg.capability:
        s["capability_limit"] = cfg.capability_limit
        files = [TASKS_DIR / f"{t}.yaml" for t in cfg.capability] + [TASKS_DIR / "blimp_utils.py"]
        s["capability.tasks"] = texts_digest([f.read_text(encoding="utf-8") for f in files if f.is_file()])
    s["ppl_batch_size"] = cfg.ppl_batch_size
    return Fingerprint(normalise(s), labels)


def run_fingerprint(
    base: Fingerprint,
    lm: LoadedModel,
    method: Method,
    ref_lm: LoadedModel | None,
    run_config: dict[str, Any] | None,
) -> Fingerprint:
    """``base`` (:func:`protocol_settings`) plus the model, the reference model, the method and extra run settings."""
    s, labels = dict(base.settings), dict(base.labels)
    s["model"] = model_identity(lm)
    labels["model"] = lm.name
    s["device"] = lm.device.type
    s["ref_model"] = model_identity(ref_lm) if ref_lm is not None else None
    if ref_lm is not None:
        labels["ref_model"] = ref_lm.name
    ms, ml = method_settings(method)
    s.update(ms)
    labels.update(ml)
    for k, v in (run_config or {}).items():
        if k not in LABELS:
            s[f"config.{k}"] = normalise(v)
    return Fingerprint(normalise(s), labels)


# --------------------------------------------------------------------------- comparing


def _show(value: Any, label: str | None) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    if len(text) > 40:
        text = text[:37] + "…"
    return f"{label} ({text})" if label else text


def differences(old: Fingerprint, new: Fingerprint) -> list[str]:
    """The settings that differ, as ``key=old, now new`` (content identities shown with their labels)."""
    out = []
    missing = object()
    keys = {
        k for k in set(old.settings) | set(new.settings) if old.settings.get(k, missing) != new.settings.get(k, missing)
    }
    for key in sorted(keys):
        parts = key.split(".")
        if any(".".join(parts[:i]) in keys for i in range(1, len(parts))):
            continue  # e.g. clean_texts.content when clean_texts itself differs
        a, b = old.settings.get(key, missing), new.settings.get(key, missing)
        was = "unset" if a is missing else _show(a, old.labels.get(key))
        now = "unset" if b is missing else _show(b, new.labels.get(key))
        out.append(f"{key}={was}, now {now}")
    return out


def only_judges_differ(old: Fingerprint, new: Fingerprint) -> bool:
    keys = {k for k in set(old.settings) | set(new.settings) if old.settings.get(k) != new.settings.get(k)}
    return all(_is(k, JUDGES) for k in keys)
