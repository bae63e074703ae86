"""Errors cross process boundaries intact: a sweep's workers send them back pickled."""

from __future__ import annotations

import pickle

from saedetox.errors import SaedetoxError, StaleRunError


def test_errors_survive_pickling_with_their_message_and_parts():
    e = StaleRunError("runs/a", ["k=20, now 40", "seed=0, now 1"], "pass --overwrite")
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is StaleRunError and str(back) == str(e)
    assert (back.folder, back.diffs, back.hint) == ("runs/a", ["k=20, now 40", "seed=0, now 1"], "pass --overwrite")
    assert str(pickle.loads(pickle.dumps(e.with_hint("use another folder")))).endswith("use another folder.")
    plain = pickle.loads(pickle.dumps(SaedetoxError("bad   input")))
    assert type(plain) is SaedetoxError and str(plain) == "bad input"
