"""Steering statistics: the queued per-batch reduction and the decode-step fast path against direct computations."""

from __future__ import annotations

import pytest
import torch

from saedetox.steering.positions import ForwardState
from saedetox.steering.push_stats import InterventionStats


class _Cache:
    def __init__(self, n: int) -> None:
        self.n = n

    def get_seq_length(self) -> int:
        return self.n


def _calls(seed: int, n_calls: int, rows: int):
    g = torch.Generator().manual_seed(seed)
    for i in range(n_calls):
        t = 5 if i == 0 else 1  # a prefill, then decode steps
        yield (
            torch.rand(rows, t, generator=g),
            torch.rand(rows, t, generator=g) > 0.3,
            torch.rand(rows, t, generator=g) > 0.5,
            torch.rand(rows, t, generator=g),
        )


@pytest.mark.parametrize("max_pending", [256, 3])
def test_queued_sums_equal_a_direct_float64_sum(max_pending, monkeypatch):
    monkeypatch.setattr(InterventionStats, "MAX_PENDING", max_pending)
    acc = InterventionStats()
    calls = list(_calls(0, 12, 4))
    for i, (d, c, o, s) in enumerate(calls):
        acc.add_positions(d, c, o, s)
        if i == 0:
            acc.add_prompt(o[:, -1])
            acc.repeat_last(3)  # the prefill's rows stand for 3 sequences each
    weights = [3.0] + [1.0] * (len(calls) - 1)
    cf = [c.double() * w for (_, c, _, _), w in zip(calls, weights, strict=True)]
    n = sum(float(c.sum()) for c in cf)
    push = sum(float((d.double() * c).sum()) for (d, _, _, _), c in zip(calls, cf, strict=True)) / n
    firing = sum(float((o.double() * c).sum()) for (_, _, o, _), c in zip(calls, cf, strict=True)) / n
    scale = sum(float((s.double() * c).sum()) for (_, _, _, s), c in zip(calls, cf, strict=True)) / n
    out = acc.summary(median_norm=2.0)
    assert out["generated_positions"] == int(n)
    assert out["effective_push"] == pytest.approx(push / 2.0, rel=1e-6)
    assert out["firing_rate"] == pytest.approx(firing, rel=1e-6)
    assert out["mean_scale"] == pytest.approx(scale, rel=1e-6)
    assert acc.sequences == 12 and out["gate_open_in_prompt"] == pytest.approx(float(calls[0][2][:, -1].sum()) / 4)
    assert not acc.pending


def test_modes_without_gates_record_push_only():
    acc = InterventionStats()
    for d, c, _, _ in _calls(1, 4, 2):
        acc.add_positions(d, c, None, None)
    out = acc.summary(1.0)
    assert out["firing_rate"] is None and out["mean_scale"] is None and out["effective_push"] > 0


def test_decode_steps_mark_what_a_hand_count_says():
    """Prefill of width 4, then decode steps; row 1 emits EOS (id 9) at its second new token, row 2 is padded."""
    eos, width = 9, 4
    st = ForwardState(gen_width=width)
    ids = torch.tensor([[1, 2, 3, 4], [1, 5, 6, 7], [0, 0, 1, 8]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 1], [0, 0, 1, 1]])
    st.observe((), {"input_ids": ids, "attention_mask": mask, "cache": _Cache(0)}, 1, eos)
    assert st.counted.tolist() == [[False, False, False, True]] * 3  # the last prompt position predicts token 1
    assert st.prompt_end == width - 1
    steps = [[3, 2, 4], [5, eos, 6], [7, eos, 8], [eos, eos, 2]]  # rows fed pad(=eos) after their EOS
    expected_counted = [[True, True, True], [True, False, True], [True, False, True], [False, False, True]]
    for t, (step, exp) in enumerate(zip(steps, expected_counted, strict=True)):
        mask = torch.cat([mask, torch.ones(3, 1, dtype=torch.long)], dim=1)
        kwargs = {"input_ids": torch.tensor(step).unsqueeze(1), "attention_mask": mask, "cache": _Cache(width + t)}
        assert not st.observe((), kwargs, 1, eos)
        assert st.counted.squeeze(1).tolist() == exp, t
        assert st.prompt_end is None
    assert st.done.tolist() == [True, True, False]
    assert st.counted_to == width + len(steps)
