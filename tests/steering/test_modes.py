"""The modes' arithmetic on hand-made tensors (the hooks around it are tested in test_steerer.py)."""

from __future__ import annotations

import torch

from saedetox.steering import modes


def test_constant_and_token_touch_only_steered_positions():
    x = torch.zeros(1, 3, 2)
    where = torch.tensor([[[1.0], [0.0], [1.0]]])
    assert torch.equal(modes.constant(x, where, torch.tensor([1.0, -1.0]))[0, :, 0], torch.tensor([1.0, 0.0, 1.0]))
    fires = torch.tensor([[[True, False], [True, True], [False, True]]])
    dirs = torch.eye(2)
    got = modes.token(x, where, fires, dirs, alpha=2.0)
    assert torch.equal(got[0], torch.tensor([[-2.0, 0.0], [0.0, 0.0], [0.0, -2.0]]))


def test_clamp_moves_latents_to_the_value():
    x = torch.zeros(1, 1, 2)
    acts = torch.tensor([[[3.0]]])
    rows = torch.tensor([[1.0, 2.0]])
    got = modes.clamp(x, torch.ones(1, 1, 1), acts, value=1.0, scale=1.0, decoder_rows=rows)
    assert torch.equal(got[0, 0], torch.tensor([-2.0, -4.0]))


def test_conditional_gate_is_sticky_and_carried_between_calls():
    x = torch.zeros(2, 3, 1)
    where = torch.ones(2, 3, 1)
    fires = torch.tensor([[[False], [True], [False]], [[False], [False], [False]]])
    out, gate = modes.conditional(x, where, fires, None, torch.tensor([False, False]), torch.tensor([1.0]))
    assert torch.equal(out[..., 0], torch.tensor([[0.0, 1.0, 1.0], [0.0, 0.0, 0.0]]))
    assert gate.tolist() == [[False, True, True], [False, False, False]]
    out, gate = modes.conditional(x[:, :1], where[:, :1], fires[:, 2:], None, gate[:, -1], torch.tensor([1.0]))
    assert out[..., 0].tolist() == [[1.0], [0.0]] and gate[:, -1].tolist() == [True, False]
    padded = torch.tensor([[False, True, True], [True, True, True]])
    out, _ = modes.conditional(x, where, fires, ~padded, torch.tensor([False, False]), torch.tensor([1.0]))
    assert torch.equal(out[..., 0], torch.zeros(2, 3))  # a firing pad position opens no gate
