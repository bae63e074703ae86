"""One pass over the contrast texts for AurA and Model Surgery together, instead of one each.

AurA pools every MLP linear layer's output (max over tokens) and Surgery's probe pools the final
normed hidden state (mean over tokens); both read the same texts with the same tokenisation
(:func:`~saedetox.methods.contrast.length_sorted_batches`), so when a sweep runs both, one
forward pass per side gathers both and leaves them in ``ContrastData.cache``, where
:func:`~saedetox.methods.aura.aura_aurocs` and :func:`~saedetox.methods.surgery_probe.train_toxicity_probe`
find them. Each gives the same numbers as its own pass (the same batches and hooks).
"""

from __future__ import annotations

from collections.abc import Collection

from saedetox.methods.aura import RESPONSES, expert_modules, fits_one_pass, response_reducers
from saedetox.methods.contrast import ContrastData, pooled_outputs
from saedetox.methods.surgery_probe import FEATURES, feature_reducer
from saedetox.model.load import LoadedModel


def prefetch_pooled(lm: LoadedModel, data: ContrastData, methods: Collection[str]) -> bool:
    """Gather AurA's responses and the probe's features in one pass per side when ``methods`` use both.

    Returns whether it did (not when only one of them is used, when AurA's responses need more
    than one pass, or when they are already there).
    """
    if not {"aura", "surgery"} <= set(methods) or not fits_one_pass(lm, data):
        return False
    keys = [(RESPONSES, id(lm.model), side) for side in ("toxic", "clean")]
    if all(k in data.cache for k in keys):
        return False
    reducers = {**response_reducers(expert_modules(lm)), **feature_reducer(lm)}
    for side, texts in (("toxic", data.toxic), ("clean", data.clean)):
        out = pooled_outputs(lm, texts, reducers)
        data.cache[(FEATURES, id(lm.model), side)] = out.pop(FEATURES)
        data.cache[(RESPONSES, id(lm.model), side)] = out
    return True
