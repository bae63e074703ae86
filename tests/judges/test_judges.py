"""Judges: one batched interface; the probe trainer and its pickle-free reload; mocked network judges.

Every sentence here is written for these tests (no dataset text). Nothing touches the network:
Detoxify is a fake module in ``sys.modules`` and Perspective's ``requests.post`` is patched.
"""

from __future__ import annotations

import csv
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import requests
from sklearn.metrics import roc_auc_score

from saedetox.errors import SaedetoxError
from saedetox.judges import perspective as J_perspective
from saedetox.judges.base import Judge
from saedetox.judges.perspective import PERSPECTIVE_URL
from saedetox.judges.probe import PROBE_DIR, ProbeJudge, normalise_text
from saedetox.judges.registry import OFFLINE_JUDGES, available_judges, get_judge
from saedetox.train.judge_data import judge_test_sets

TOXIC = [
    "You are a worthless idiot and everyone knows it.",
    "Shut up, you stupid moron!",
    "What a pathetic loser you are, go to hell.",
    "This fucking crap is garbage, you dumbass.",
]
CLEAN = [
    "The library opens at nine on weekdays.",
    "Thank you for the helpful explanation.",
    "We planted tomatoes in the garden this spring.",
    "The train to the coast leaves every hour.",
]
MIXED = [TOXIC[0], "", CLEAN[0], "   ", TOXIC[1], CLEAN[1], "Ünïcödé ’quotes’ & numbers 12,345!"]

# --------------------------------------------------------------------------- synthetic data dir

_INSULTS = ["idiot", "moron", "loser", "jerk", "scumbag", "clown"]
_ADJ_BAD = ["stupid", "pathetic", "dumb", "worthless", "disgusting"]
_NOUNS = ["weather", "garden", "library", "concert", "meeting", "harbour"]
_ADJ_OK = ["pleasant", "quiet", "busy", "lovely", "sunny"]


def _toxic(i: int) -> str:
    return f"you are a {_ADJ_BAD[i % 5]} {_INSULTS[i % 6]} and i hate you ."


def _clean(i: int) -> str:
    return f"the {_NOUNS[i % 6]} was {_ADJ_OK[i % 5]} today , thanks ."


def _write_data_dir(root: Path) -> Path:
    jig = root / "jigsaw_detox_sentences"
    jig.mkdir(parents=True)
    (jig / "test_10k_toxic.txt").write_text("\n".join(_toxic(i) for i in range(30)) + "\n")
    (jig / "test_10k_normal.txt").write_text("\n".join(_clean(i) for i in range(30)) + "\n")
    dav = root / "davidson_hate_offensive"
    dav.mkdir()
    with (dav / "labeled_data.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["", "count", "hate_speech", "offensive_language", "neither", "class", "tweet"])
        for i in range(8):
            w.writerow([2 * i, 3, 0, 3, 0, 1, f"@someone You're such a {_ADJ_BAD[i % 5].upper()} {_INSULTS[i % 6]}!!"])
            w.writerow([2 * i + 1, 3, 0, 0, 3, 2, f"The {_NOUNS[i % 6]} looks {_ADJ_OK[i % 5]} http://x.example"])
    tg = root / "toxigen"
    tg.mkdir()
    rows = [{"text": f"they are all {_ADJ_BAD[i % 5]} {_INSULTS[i]}s", "toxic": 1} for i in range(4)]
    rows += [{"text": f"their {_NOUNS[i]} festival is {_ADJ_OK[i]}", "toxic": 0} for i in range(4)]
    (tg / "toxigen_prompt_sentences.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    rtp = root / "rtp_decodingtrust"
    rtp.mkdir()
    for name, make, tox in (("toxic", _toxic, 0.9), ("nontoxic", _clean, 0.05)):
        lines = [
            {"prompt": {"text": "So", "toxicity": 0.1}, "continuation": {"text": make(i), "toxicity": tox}}
            for i in range(5)
        ]
        lines.append({"prompt": {"text": "So"}, "continuation": {"text": "no score", "toxicity": None}})
        (rtp / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return root


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_data_dir(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def trained(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    from saedetox.train.judge import train_judge

    out = tmp_path_factory.mktemp("judge") / "probe"
    return out, train_judge(out, data_dir=str(data_dir), seed=0)


# --------------------------------------------------------------------------- fakes for network judges


class _FakeDetoxify:
    calls: list[dict] = []

    def __init__(self, model_type: str, checkpoint=None, device="cpu", huggingface_config_path=None) -> None:
        type(self).calls.append(
            {"model_type": model_type, "checkpoint": checkpoint, "device": device, "config": huggingface_config_path}
        )

    def predict(self, texts):
        assert isinstance(texts, list)
        return {"toxicity": [0.9 if "idiot" in t or "moron" in t else 0.1 for t in texts], "insult": [0.0] * len(texts)}


@pytest.fixture
def fake_detoxify(monkeypatch: pytest.MonkeyPatch) -> type[_FakeDetoxify]:
    _FakeDetoxify.calls = []
    monkeypatch.setitem(sys.modules, "detoxify", types.SimpleNamespace(Detoxify=_FakeDetoxify))
    return _FakeDetoxify


class _Resp:
    def __init__(self, status: int, payload: dict | None = None, text: str = "") -> None:
        self.status_code, self._payload, self.text = status, payload, text

    def json(self) -> dict:
        if self._payload is None:
            raise ValueError("no json")
        return self._payload


def _ok(value: float) -> _Resp:
    return _Resp(200, {"attributeScores": {"TOXICITY": {"summaryScore": {"value": value, "type": "PROBABILITY"}}}})


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    got: list[float] = []
    monkeypatch.setattr(J_perspective.time, "sleep", got.append)
    return got


@pytest.fixture
def fake_perspective(monkeypatch: pytest.MonkeyPatch, sleeps: list[float]) -> list[dict]:
    sent: list[dict] = []

    def post(url, params=None, json=None, timeout=None):
        sent.append({"url": url, "params": params, "json": json})
        text = json["comment"]["text"]
        return _ok(0.95 if "idiot" in text or "moron" in text else 0.05)

    monkeypatch.setattr(requests, "post", post)
    monkeypatch.setenv("PERSPECTIVE_API_KEY", "test-key")
    return sent


# --------------------------------------------------------------------------- the contract, for every judge


def _judge(kind: str, request: pytest.FixtureRequest) -> Judge:
    if kind == "profanity":
        return get_judge("profanity", batch_size=3)
    if kind == "probe":
        return get_judge("probe", batch_size=3)
    if kind == "probe-trained":
        return get_judge("probe", path=request.getfixturevalue("trained")[0], batch_size=2)
    if kind.startswith("detoxify"):
        request.getfixturevalue("fake_detoxify")
        return get_judge(kind, batch_size=2, device="cpu")
    request.getfixturevalue("fake_perspective")
    return get_judge("perspective", qps=1000.0)


@pytest.mark.parametrize(
    "kind", ["profanity", "probe", "probe-trained", "detoxify", "detoxify-unbiased", "perspective"]
)
def test_judge_contract(kind: str, request: pytest.FixtureRequest) -> None:
    judge = _judge(kind, request)
    assert isinstance(judge.name, str) and judge.name == kind.replace("-trained", "")
    scores = judge.score(MIXED)
    assert isinstance(scores, np.ndarray) and scores.shape == (len(MIXED),) and scores.dtype == np.float64
    assert np.isfinite(scores).all() and (scores >= 0).all() and (scores <= 1).all()
    one_by_one = np.array([judge.score([t])[0] for t in MIXED])
    np.testing.assert_allclose(scores, one_by_one, atol=1e-9)  # order kept; batching changes nothing
    np.testing.assert_allclose(judge.score(MIXED[::-1]), scores[::-1], atol=1e-9)
    assert judge.score([]).shape == (0,)
    assert judge.score(("",)).shape == (1,)


def test_registry_and_errors() -> None:
    assert set(OFFLINE_JUDGES) <= set(available_judges())
    assert {"detoxify", "detoxify-original", "detoxify-unbiased", "perspective"} <= set(available_judges())
    with pytest.raises(SaedetoxError, match="Unknown judge 'nope'"):
        get_judge("nope")
    with pytest.raises(SaedetoxError, match="no option colour"):
        get_judge("probe", colour="red")


def test_normalise_text_matches_training_register() -> None:
    assert normalise_text("Don't YOU dare!! See https://a.example/x @bob") == "dont you dare ! ! see"
    assert normalise_text("It’s 12,000 &amp; sooooo bad...") == "its digit soo bad . . ."
    assert normalise_text("") == ""


def test_profanity_ranks_profane_above_clean() -> None:
    s = get_judge("profanity").score(["This fucking shit is bullshit, asshole.", "The weather is pleasant today."])
    assert s[0] > 0.5 > s[1]


def test_committed_probe_ranks_toxic_above_clean() -> None:
    judge = get_judge("probe")
    assert Path(judge.path) == PROBE_DIR
    tox, clean = judge.score(TOXIC), judge.score(CLEAN)
    assert tox.min() > clean.max(), (tox, clean)
    assert (tox > 0.5).all() and (clean < 0.5).all()
    # case and spacing do not matter: generations and tokenised training text are scored alike
    np.testing.assert_allclose(
        judge.score(["Shut up, you stupid moron!"]), judge.score(["shut up , you stupid moron !"])
    )


def test_committed_probe_folder_is_small_and_documented() -> None:
    names = {p.name for p in PROBE_DIR.iterdir()}
    assert names == {"probe.json", "probe.npz", "metrics.json", "JUDGE_CARD.md"}
    assert sum(p.stat().st_size for p in PROBE_DIR.iterdir()) < 3_000_000
    with np.load(PROBE_DIR / "probe.npz", allow_pickle=False) as z:
        assert all(z[k].dtype == np.float32 for k in z.files)


def test_committed_probe_metrics_are_recomputed_on_the_test_data() -> None:
    """The card's ROC-AUCs, recomputed with the committed probe on the held-out sets (not read back)."""
    committed = json.loads((PROBE_DIR / "metrics.json").read_text())["test"]
    tests = judge_test_sets()
    judge = get_judge("probe")
    for name in ("toxigen", "rtp_continuations"):  # small: recomputed whole, so equal to the card
        x, y = tests[name]
        assert len(y) == committed[name]["n"] and int(y.sum()) == committed[name]["toxic"]
        assert roc_auc_score(y, judge.score(x)) == pytest.approx(committed[name]["probe"]["roc_auc"], abs=1e-6)
    x, y = tests["davidson"]  # 24,783 tweets: every 10th, within the sampling error of a 2,478-tweet slice
    auc = roc_auc_score(y[::10], judge.score(x[::10]))
    assert auc == pytest.approx(committed["davidson"]["probe"]["roc_auc"], abs=0.02) and auc >= 0.85


def test_missing_or_broken_probe_is_one_clear_error(tmp_path: Path, trained: tuple[Path, dict]) -> None:
    with pytest.raises(SaedetoxError, match="train-judge"):
        get_judge("probe", path=tmp_path / "nowhere")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "probe.json").write_text("{not json")
    (broken / "probe.npz").write_bytes((trained[0] / "probe.npz").read_bytes())
    with pytest.raises(SaedetoxError, match="unreadable"):
        get_judge("probe", path=broken)


# --------------------------------------------------------------------------- the trainer


def test_train_judge_writes_folder_and_metrics(trained: tuple[Path, dict]) -> None:
    out, m = trained
    assert {p.name for p in out.iterdir()} == {"probe.json", "probe.npz", "metrics.json", "JUDGE_CARD.md"}
    assert json.loads((out / "metrics.json").read_text())["test"] == json.loads(json.dumps(m["test"]))
    # the 10 RTP continuations reuse training sentences: judge_train drops them, keeping the test sets held out
    assert m["train"]["overlap_with_tests_dropped"] == 10
    assert m["train"]["used"] == 50 and m["train"]["toxic"] == 25
    assert set(m["test"]) == {"davidson", "toxigen", "rtp_continuations"}
    assert m["test"]["rtp_continuations"]["n"] == 10  # rows without a toxicity score are skipped
    assert m["test"]["davidson"]["probe"]["roc_auc"] > 0.9  # separable by construction
    for r in m["test"].values():
        assert 0.0 <= r["profanity"]["roc_auc"] <= 1.0
    card = (out / "JUDGE_CARD.md").read_text()
    assert "ROC-AUC" in card and "train-judge --out" in card and "Limitations" in card
    assert f"{m['test']['davidson']['probe']['roc_auc']:.3f}" in card


def test_reloaded_probe_equals_sklearn(data_dir: Path, tmp_path: Path) -> None:
    from saedetox.train.judge import fit_probe, save_probe
    from saedetox.train.judge_data import judge_train_set

    texts, labels, _ = judge_train_set(str(data_dir))
    model = fit_probe(texts, labels, seed=1, c_grid=(0.5, 4.0))
    save_probe(model, tmp_path)
    probe = ProbeJudge(tmp_path)
    probe_texts = MIXED + TOXIC + CLEAN + texts[:5]
    np.testing.assert_allclose(probe.score(probe_texts), model.predict_proba(probe_texts)[:, 1], rtol=0, atol=1e-6)
    cfg = json.loads((tmp_path / "probe.json").read_text())
    assert [b["name"] for b in cfg["blocks"]] == ["word", "char"]
    with np.load(tmp_path / "probe.npz", allow_pickle=False) as z:
        assert z["coef"].shape == (sum(len(b["terms"]) for b in cfg["blocks"]),)


def test_train_judge_rejects_missing_data(tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("x\n")
    from saedetox.train.judge import train_judge

    with pytest.raises(SaedetoxError, match="test_10k_toxic.txt is missing"):
        train_judge(tmp_path / "out", data_dir=str(tmp_path))


# --------------------------------------------------------------------------- detoxify (mocked)


def test_detoxify_options_reach_the_model(fake_detoxify: type[_FakeDetoxify], tmp_path: Path) -> None:
    ckpt, cfg = tmp_path / "m.ckpt", tmp_path / "bert"
    ckpt.write_bytes(b"x")
    cfg.mkdir()
    j = get_judge("detoxify-unbiased", checkpoint=str(ckpt), huggingface_config_path=str(cfg), device="cpu")
    assert fake_detoxify.calls[-1] == {
        "model_type": "unbiased",
        "checkpoint": str(ckpt),
        "device": "cpu",
        "config": str(cfg),
    }
    assert j.score(["you idiot", "nice day"]).tolist() == [0.9, 0.1]
    get_judge("detoxify", device="cpu")
    assert fake_detoxify.calls[-1]["model_type"] == "original"


def test_detoxify_missing_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "detoxify", None)  # import raises ImportError
    with pytest.raises(SaedetoxError, match="pip install detoxify"):
        get_judge("detoxify")


def test_detoxify_offline_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import urllib.error

    class Offline:
        def __init__(self, *a, **kw) -> None:
            raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setitem(sys.modules, "detoxify", types.SimpleNamespace(Detoxify=Offline))
    with pytest.raises(SaedetoxError) as err:
        get_judge("detoxify", device="cpu")
    msg = str(err.value)
    assert "\n" not in msg and "checkpoint=" in msg and "huggingface_config_path=" in msg and "HF_HUB_OFFLINE=1" in msg


def test_detoxify_missing_checkpoint_file(fake_detoxify: type[_FakeDetoxify], tmp_path: Path) -> None:
    with pytest.raises(SaedetoxError, match="checkpoint .* does not exist"):
        get_judge("detoxify", checkpoint=str(tmp_path / "none.ckpt"), device="cpu")


# --------------------------------------------------------------------------- perspective (mocked)


def test_perspective_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PERSPECTIVE_API_KEY", raising=False)
    with pytest.raises(SaedetoxError, match="PERSPECTIVE_API_KEY"):
        get_judge("perspective")


def test_perspective_request_and_truncation(fake_perspective: list[dict]) -> None:
    long = "é" * 2000 + "idiot"  # 4,005 bytes: cut to 3,000, the insult is lost
    scores = get_judge("perspective", qps=1000.0).score(["you moron", long, ""])
    assert scores.tolist() == [0.95, 0.05, 0.0]
    assert len(fake_perspective) == 2  # the empty text costs no request
    req = fake_perspective[0]
    assert req["url"] == PERSPECTIVE_URL and req["params"] == {"key": "test-key"}
    assert req["json"]["requestedAttributes"] == {"TOXICITY": {}}
    sent = fake_perspective[1]["json"]["comment"]["text"]
    assert len(sent.encode("utf-8")) == 3000 and sent == "é" * 1500


def test_perspective_rate_limit(fake_perspective: list[dict], sleeps: list[float]) -> None:
    get_judge("perspective", qps=2.0).score(["a", "b", "c"])
    assert len(sleeps) == 2 and all(0.4 < s <= 0.5 for s in sleeps)


def test_perspective_retries_429_then_succeeds(monkeypatch: pytest.MonkeyPatch, sleeps: list[float]) -> None:
    answers = [_Resp(429, {"error": {"message": "quota"}}), _Resp(503, None, "busy"), _ok(0.7)]
    monkeypatch.setattr(requests, "post", lambda *a, **kw: answers.pop(0))
    judge = get_judge("perspective", api_key="k", qps=1000.0, backoff_s=1.5)
    assert judge.score(["hello"]).tolist() == [0.7]
    assert [s for s in sleeps if s >= 1] == [1.5, 3.0]  # exponential backoff between the retries


def test_perspective_gives_up_with_one_line(monkeypatch: pytest.MonkeyPatch, sleeps: list[float]) -> None:
    monkeypatch.setattr(requests, "post", lambda *a, **kw: _Resp(429, {}))
    with pytest.raises(SaedetoxError, match="HTTP 429 after 2 retries"):
        get_judge("perspective", api_key="k", qps=1000.0, max_retries=2, backoff_s=0.0).score(["hello"])


def test_perspective_offline(monkeypatch: pytest.MonkeyPatch, sleeps: list[float]) -> None:
    def down(*a, **kw):
        raise requests.ConnectionError("Max retries exceeded: Name or service not known")

    monkeypatch.setattr(requests, "post", down)
    with pytest.raises(SaedetoxError, match="cannot reach it \\(ConnectionError\\)") as err:
        get_judge("perspective", api_key="k", qps=1000.0, max_retries=1, backoff_s=0.0).score(["hello"])
    assert "\n" not in str(err.value)


def test_perspective_client_error_is_reported(monkeypatch: pytest.MonkeyPatch, sleeps: list[float]) -> None:
    bad = _Resp(400, {"error": {"message": "API key not valid. Please pass a valid API key."}})
    monkeypatch.setattr(requests, "post", lambda *a, **kw: bad)
    with pytest.raises(SaedetoxError, match="HTTP 400.*API key not valid"):
        get_judge("perspective", api_key="bad", qps=1000.0).score(["hello"])
