"""Flattened, chunked, mixed-level batches (vLLM's layout) steer each sequence exactly as a whole.

The reference steers each sequence alone and in one piece; the flat path sees the same tokens
cut into a prompt chunk plus one-token steps, interleaved with other requests at other levels in
shuffled order, its per-request state carried across steps by request id.
"""

from __future__ import annotations

import random

import pytest
import torch

from saedetox.model.capture import capture
from saedetox.model.load import load_model
from saedetox.sae.load import load_sae
from saedetox.serving.compiled import compile_levels
from saedetox.serving.flat import FlatSteering, StepInfo
from saedetox.steering.apply import apply_intervention
from serving_levels import PROMPTS, level_specs


@pytest.fixture(scope="module")
def world():
    lm = load_model("reference", dtype="float32")
    sae = load_sae("reference", lm)
    levels = compile_levels(lm, level_specs(sae))
    texts = PROMPTS + [p + " and then some more words follow here" for p in PROMPTS]
    hook = "blocks.3.hook_resid_pre"
    xs = [a.float() for a in capture(lm, texts, hook, prepend_bos=True)]
    ids = [torch.tensor([lm.tokenizer.bos_token_id] + lm.tokenizer(t).input_ids) for t in texts]
    return lm, levels, xs, ids


def _whole(iv, x: torch.Tensor, ids: torch.Tensor, prompt_len: int, bos: int) -> torch.Tensor:
    """One sequence steered in one call, as the HF backend does with an unpadded batch of one."""
    t = x.shape[0]
    allowed = torch.ones(1, t, dtype=torch.bool)
    if iv.positions == "generated":
        allowed &= (torch.arange(t) >= prompt_len - 1).unsqueeze(0)
    counts = (ids != bos).unsqueeze(0)
    real = torch.ones(1, t, dtype=torch.bool)
    return apply_intervention(iv, x[None], allowed.unsqueeze(-1).float(), real, counts).out[0]


def test_levels_change_the_stream(world):
    lm, levels, xs, ids = world
    for name, ivs in levels.items():
        moved = (
            [(_whole(ivs[0], x, i, 4, 0) - x).abs().max() > 1e-4 for x, i in zip(xs, ids, strict=True)] if ivs else []
        )
        assert any(moved) if ivs else True, f"level {name} steers nothing: the test would not see it"
        if name in ("conditional", "token"):  # adaptive scales every position by p > 0
            assert not all(moved), f"level {name} moves every sequence: its gate is not exercised"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_flat_chunked_mixed_equals_whole(world, seed):
    lm, levels, xs, ids = world
    bos = lm.tokenizer.bos_token_id
    rng = random.Random(seed)
    names = list(levels)
    n = len(xs)
    lv = [names[(i + seed) % len(names)] for i in range(n)]
    prompt_len = [rng.randint(2, min(6, x.shape[0])) for x in xs]
    cuts = []  # per sequence: chunk lengths (a prompt, possibly in two chunks, then one token a step)
    for x, p in zip(xs, prompt_len, strict=True):
        first = rng.randint(1, p)
        chunks = [first] + ([p - first] if p > first else []) + [1] * (x.shape[0] - p)
        cuts.append(chunks)
    steering = FlatSteering(levels, bos)
    done = [0] * n
    step_no = [0] * n
    got = [[] for _ in range(n)]
    while any(s < len(c) for s, c in zip(step_no, cuts, strict=True)):
        active = [i for i in range(n) if step_no[i] < len(cuts[i]) and rng.random() < 0.8]
        if not active:
            continue
        rng.shuffle(active)
        starts, rows, tok = [0], [], []
        for i in active:
            k = cuts[i][step_no[i]]
            rows.append(xs[i][done[i] : done[i] + k])
            tok.append(ids[i][done[i] : done[i] + k])
            starts.append(starts[-1] + k)
        x = torch.cat(rows + [torch.zeros(3, xs[0].shape[1])])  # padded rows past the batch stay untouched
        info = StepInfo(
            req_ids=[f"r{i}" for i in active],
            starts=starts,
            computed=[done[i] for i in active],
            prompt_lens=[prompt_len[i] for i in active],
            levels=[lv[i] for i in active],
            token_ids=torch.cat(tok + [torch.zeros(3, dtype=torch.long)]),
        )
        steering.begin(info)
        y = steering.apply(3, "pre", x)
        assert torch.equal(y[starts[-1] :], x[starts[-1] :])
        for j, i in enumerate(active):
            got[i].append(y[starts[j] : starts[j + 1]])
            done[i] += starts[j + 1] - starts[j]
            step_no[i] += 1
        steering.finish([f"r{i}" for i in active if step_no[i] == len(cuts[i])])
    for i in range(n):
        ivs = levels[lv[i]]
        want = xs[i] if not ivs else _whole(ivs[0], xs[i], ids[i], prompt_len[i], bos)
        torch.testing.assert_close(torch.cat(got[i]), want, rtol=1e-5, atol=1e-5, msg=f"sequence {i} level {lv[i]}")
    assert steering.state_size() == 0


def test_state_follows_request_and_is_freed(world):
    lm, levels, xs, ids = world
    steering = FlatSteering(levels, lm.tokenizer.bos_token_id)
    x = xs[2]
    t = x.shape[0]
    steering.begin(StepInfo(["a"], [0, t - 1], [0], [t - 1], ["conditional"], ids[2][: t - 1]))
    steering.apply(3, "pre", x[: t - 1])
    assert steering.state_size() == 1
    steering.begin(StepInfo(["a"], [0, t - 1], [0], [t - 1], ["conditional"], ids[2][: t - 1]))  # a restart
    assert steering.state_size() == 0  # a request seen again at position 0 (preempted, recomputed) starts afresh
    steering.apply(3, "pre", x[: t - 1])
    steering.finish(["a"])
    assert steering.state_size() == 0


def test_unknown_level_is_left_unsteered_and_counted(world):
    lm, levels, xs, ids = world
    steering = FlatSteering(levels, lm.tokenizer.bos_token_id)
    x = xs[0]
    steering.begin(StepInfo(["a"], [0, x.shape[0]], [0], [2], ["nope"], ids[0]))
    assert torch.equal(steering.apply(3, "pre", x), x)
    assert steering.unknown_seen == 1
