"""What one run generates (:class:`GenerationJob`), shared by the backends' generators."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from saedetox.data.readers import Prompt
from saedetox.eval.runs.generation_log import GenerationLog
from saedetox.eval.sampler.settings import SamplingConfig
from saedetox.eval.sampler.vllm import VLLMOptions
from saedetox.methods.base import Method
from saedetox.model.load import LoadedModel


@dataclass(frozen=True)
class GenerationJob:
    """What one run generates: prompts (as the model sees them: the method's prefix first), batches, log."""

    lm: LoadedModel
    prompts: list[Prompt]
    texts: list[str]
    method: Method
    sampling: SamplingConfig
    batches: list[list[int]]
    log: GenerationLog
    vllm: VLLMOptions = VLLMOptions()
    contexts: list[str] | None = None  # what follows the prefix, when not the prompt itself (an attack)

    def row(self, i: int, b: int, conts: list[str], ids: list[list[int]] | None = None) -> dict[str, Any]:
        row = {
            "i": i,
            "batch": b,
            "prompt": self.prompts[i].text,
            "prompt_toxicity": self.prompts[i].toxicity,
            **self._attacked(i),
            "continuations": conts,
        }
        return row if ids is None else {**row, "continuation_ids": ids}

    def append_chunk(self, chunk: list[int], rows: dict[int, list[list[int]]], advance: Callable[[], None]) -> None:
        """Append the rows of the batches in ``chunk`` (token ids per prompt, decoded here), batch by batch."""
        tok = self.lm.tokenizer
        for b in chunk:
            out = [
                self.row(i, b, [tok.decode(r, skip_special_tokens=True) for r in rows[i]], rows[i])
                for i in self.batches[b]
            ]
            self.log.append(out)
            advance()

    def _attacked(self, i: int) -> dict[str, str]:
        ctx = self.contexts[i] if self.contexts is not None else self.prompts[i].text
        return {"attacked_prompt": ctx} if ctx != self.prompts[i].text else {}
