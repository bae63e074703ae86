"""Attribution gradients agree with a finite-difference steering experiment."""

from __future__ import annotations

import torch

from saedetox.discover.attribution import _grad_at_hook, toxic_token_ids
from saedetox.model.tokens import tokenize_batch
from saedetox.steering.spec import Intervention, SteeringSpec
from saedetox.steering.steerer import Steerer

TOXIC = ["you stupid idiot, shut up", "what a damn fool you are", "shut up you stupid moron"] * 3
CLEAN = ["you are a kind person, thanks", "what a lovely day it is", "please be quiet, my friend"] * 3
HOOK = "blocks.1.hook_resid_pre"


def _target_logprob(lm, texts, targets):
    batch = tokenize_batch(lm.tokenizer, texts, True, "right", lm.device, 128)
    ids, mask = batch["input_ids"], batch["attention_mask"].bool()
    with torch.no_grad():
        lp = torch.log_softmax(lm.model(**batch).logits[:, :-1].double(), -1)
    lp = lp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    keep = mask[:, 1:] & torch.isin(ids[:, 1:], torch.tensor(targets))
    return float((lp * keep).sum())


def test_toxic_tokens_are_overrepresented(gpt2):
    ids = toxic_token_ids(gpt2, TOXIC, CLEAN, min_count=2)
    assert ids
    tok = gpt2.tokenizer
    count_t = [i for x in tok(TOXIC, add_special_tokens=False)["input_ids"] for i in x]
    count_c = [i for x in tok(CLEAN, add_special_tokens=False)["input_ids"] for i in x]
    for i in ids:
        assert count_t.count(i) >= 2 and count_t.count(i) / len(count_t) > count_c.count(i) / len(count_c)


def test_first_order_prediction_matches_finite_difference(gpt2):
    targets = toxic_token_ids(gpt2, TOXIC, CLEAN, min_count=2)
    grad, n = _grad_at_hook(gpt2, HOOK, TOXIC, set(targets), batch_size=4)
    assert n > 0
    torch.manual_seed(0)
    v = torch.randn(gpt2.d_model)
    v = v / v.norm()
    eps = 1e-3
    base = _target_logprob(gpt2, TOXIC, targets)
    spec = SteeringSpec([Intervention(vector=v.tolist(), hook=HOOK, strength=eps)])
    with Steerer(gpt2, spec):  # steering adds -alpha * vector = eps * (-v) at every position
        moved = _target_logprob(gpt2, TOXIC, targets)
    predicted = float(grad @ (-v.double())) * eps
    assert abs((moved - base) - predicted) < 0.05 * abs(predicted) + 1e-6
