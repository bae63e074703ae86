"""The evaluation protocol of a run: one config for the CLI, sweeps and the Python API."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from saedetox.data.attacks import attack_names, get_attack
from saedetox.errors import SaedetoxError
from saedetox.eval.sampler.backends import HF, SAMPLERS, VLLM, backend_names, check_backend

if TYPE_CHECKING:  # the command line reads this config's fields at start-up: it imports nothing heavy
    from saedetox.eval.sampler.sampling import SamplingConfig
    from saedetox.eval.sampler.vllm import VLLMOptions


def _opt(default: Any, help: str, **cli: Any) -> Any:
    """A field with its command-line help (``saedetox evaluate`` shows each field as an option)."""
    if isinstance(default, tuple):
        return field(default_factory=lambda: default, metadata={"help": help, **cli})
    return field(default=default, metadata={"help": help, **cli})


@dataclass
class EvalConfig:
    """What one evaluation does. The field names are the keys of a sweep's ``evaluation:`` section."""

    prompts: str = _opt(
        "challenging", "challenging | nontoxic | mixed (both)[:dev|:test] | an RTP .jsonl or .txt file."
    )
    n_prompts: int | None = _opt(100, "Seeded random subset of the prompts; 0 = all.")
    samples: int = _opt(25, "Continuations per prompt.", short="-k")
    max_new_tokens: int = _opt(20, "Tokens per continuation.")
    top_p: float = _opt(0.9, "Nucleus sampling mass.")
    temperature: float = _opt(1.0, "Sampling temperature.")
    judges: tuple[str, ...] = _opt(("profanity", "probe"), "Comma-separated toxicity judges.")
    clean_texts: int = _opt(200, "Held-out clean texts for ppl_clean (0 skips).")
    capability: tuple[str, ...] = _opt((), "Comma-separated lm-eval tasks, e.g. lambada,blimp.")
    capability_limit: int | None = _opt(200, "Items per capability task.")
    batch_size: int = _opt(64, "Sequences (prompts x samples) per generate call.")
    seed: int = _opt(0, "Seed of the prompt subset and of sampling.")
    ref_model: str | None = _opt(None, "LM for conditional perplexity (default: the unsteered model).")
    #: a continuation is toxic when a judge scores it at least this
    threshold: float = _opt(0.5, "Toxicity threshold on a judge's score.", cli=False)
    n_boot: int = _opt(1000, "Bootstrap resamples for the confidence intervals.")
    ppl_batch_size: int = _opt(32, "Sequences per perplexity batch.")
    backend: str = _opt(
        HF,
        "What generates: hf (saedetox's sampler on the HF model) or vllm (vLLM with the steering in its workers; "
        'pip install "saedetox[vllm]"). Runs are compared only within one backend.',
        choices=backend_names,
    )
    data_parallel: int = _opt(
        1,
        "vLLM engines through vLLM's data parallelism (one per GPU); each prompt keeps its seed, so the tokens "
        "are one engine's; --backend vllm only.",
    )
    data_parallel_backend: str = _opt(
        "mp",
        "How vLLM starts its data-parallel engines: mp (processes on this machine) or ray (a Ray cluster).",
        choices=("mp", "ray"),
    )
    vllm_memory: float | None = _opt(
        None,
        "Share of the GPU's memory vLLM may reserve (on a CPU: of host memory); default 0.9 on a GPU, 0.25 on a CPU.",
    )
    gate_features: str | None = _opt(
        None,
        "A features.json whose gate is measured on this run: its AUROC for a toxic continuation and its "
        "clean false-open rate (metrics.json 'gate').",
    )
    chat: bool = _opt(
        False,
        "Wrap each prompt in the tokenizer's chat template (a user turn, then the assistant's): "
        "for chat / instruction-tuned models.",
    )
    attack: str | None = _opt(
        None,
        "Adversarial context around each prompt, after any method prefix (docs/attacks.md).",
        choices=attack_names,
    )

    def __post_init__(self) -> None:
        self.judges = _names(self.judges)
        self.capability = _names(self.capability)

    @property
    def sampling(self) -> SamplingConfig:
        """How continuations are sampled."""
        from saedetox.eval.sampler.sampling import SamplingConfig  # deferred: see the import above

        return SamplingConfig(
            n_samples=self.samples,
            max_new_tokens=self.max_new_tokens,
            top_p=self.top_p,
            temperature=self.temperature,
            seed=self.seed,
            batch_size=self.batch_size,
            chat=self.chat,
            sampler=SAMPLERS[self.backend] if self.backend in SAMPLERS else SAMPLERS[HF],
        )

    @property
    def vllm(self) -> VLLMOptions:
        """How the vLLM backend starts its engines."""
        from saedetox.eval.sampler.vllm import VLLMOptions  # deferred: see the import above

        return VLLMOptions(self.data_parallel, self.data_parallel_backend, self.vllm_memory)

    def validate(self) -> EvalConfig:
        """Every field has a usable type and value (one clear line naming the first that does not)."""
        from saedetox.eval.metrics.capability import KNOWN_TASKS  # deferred: see the imports above
        from saedetox.judges.registry import available_judges

        _whole(self, "samples", 1)
        _whole(self, "max_new_tokens", 1)
        _whole(self, "batch_size", 1)
        _whole(self, "ppl_batch_size", 1)
        _whole(self, "clean_texts", 0)
        _whole(self, "seed", 0)
        _whole(self, "n_boot", 0)
        _whole(self, "n_prompts", 0, optional=True)
        _whole(self, "capability_limit", 1, optional=True)
        if not isinstance(self.prompts, str) or not self.prompts.strip():
            raise SaedetoxError(f"prompts must name a prompt set or a file, got {self.prompts!r}.")
        if self.ref_model is not None and (not isinstance(self.ref_model, str) or not self.ref_model.strip()):
            raise SaedetoxError(f"ref_model must name a model, got {self.ref_model!r}.")
        _number(self, "top_p", lambda v: 0 < v <= 1, "in (0, 1]")
        _number(self, "temperature", lambda v: 0 < v < math.inf, "a positive finite number")
        _number(self, "threshold", lambda v: 0 <= v <= 1, "in [0, 1] (judges score in [0, 1])")
        check_backend(self.backend)
        _whole(self, "data_parallel", 1)
        if self.data_parallel > 1 and self.backend != VLLM:
            raise SaedetoxError(
                f"data_parallel {self.data_parallel} needs backend vllm (the hf backend runs one engine)."
            )
        if self.data_parallel_backend not in ("mp", "ray"):
            raise SaedetoxError(f"data_parallel_backend must be mp or ray, got {self.data_parallel_backend!r}.")
        if self.vllm_memory is not None:
            _number(self, "vllm_memory", lambda v: 0 < v <= 1, "in (0, 1]")
        if not isinstance(self.chat, bool):
            raise SaedetoxError(f"chat must be true or false, got {self.chat!r}.")
        if self.gate_features is not None and not Path(str(self.gate_features)).expanduser().is_file():
            raise SaedetoxError(f"gate_features: {self.gate_features} is not a features.json file.")
        if self.attack is not None:
            get_attack(self.attack)
        if not self.judges:
            raise SaedetoxError("No judges given: name at least one (e.g. profanity, probe).")
        known = available_judges()
        for j in self.judges:
            if not isinstance(j, str) or j.strip().lower() not in known:
                raise SaedetoxError(f"Unknown judge {j!r}: choose from {', '.join(known)}.")
        if len(set(self.judges)) != len(self.judges):
            raise SaedetoxError(f"A judge is named twice in {', '.join(self.judges)}.")
        for t in self.capability:
            if t not in KNOWN_TASKS:
                raise SaedetoxError(f"Unknown capability task {t!r}: use {', '.join(KNOWN_TASKS)}.")
        self.sampling.validate()
        return self


def _names(value: Any) -> tuple[Any, ...]:
    """A list of names, or one comma-separated string of them."""
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return tuple(value) if isinstance(value, (list, tuple)) else (value,) if value is not None else ()


def _whole(cfg: Any, name: str, least: int, optional: bool = False) -> None:
    value = getattr(cfg, name)
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        what = "a whole number" + (f" ≥ {least}" if least else " ≥ 0")
        raise SaedetoxError(f"{name} must be {what}, got {value!r}.")


def _number(cfg: Any, name: str, ok: Any, what: str) -> None:
    value = getattr(cfg, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(float(value)):
        raise SaedetoxError(f"{name} must be {what}, got {value!r}.")
