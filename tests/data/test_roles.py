"""The reference world's splits are deterministic and disjoint; nothing trained on is evaluated on."""

from __future__ import annotations

import re

import pytest

from saedetox.data.corpus import SOURCES, source_docs
from saedetox.data.location import data_file, resolve_data_dir
from saedetox.data.readers import read_lines, read_rtp, read_table
from saedetox.data.roles import normalise_key, paradetox_by_role, paradetox_role, stable_unit
from saedetox.train.corpus import WEIGHTS

WORD = re.compile(r"[a-z0-9']+")
N = 8


def shingles(text: str) -> set[int]:
    w = WORD.findall(text.lower())
    return {hash(tuple(w[i : i + N])) for i in range(max(0, len(w) - N + 1))}


@pytest.fixture(scope="module")
def root():
    return resolve_data_dir()


@pytest.fixture(scope="module")
def eval_prompts(root):
    return [p.text for f in ("toxic.jsonl", "nontoxic.jsonl") for p in read_rtp(root / "rtp_decodingtrust" / f)]


def test_stable_hash_is_deterministic():
    assert stable_unit("hello") == stable_unit("hello")
    assert 0 <= stable_unit("x") < 1 and stable_unit("x") != stable_unit("y")
    assert paradetox_role("You Suck!") == paradetox_role("  you suck! ")


def test_no_evaluation_prompt_appears_in_any_training_text(root, eval_prompts):
    """8-word shingles of every RTP prompt are looked up in every LM, SAE, discovery and judge text."""
    probe = {}
    for p in eval_prompts:
        for s in shingles(p):
            probe[s] = p
    assert len(probe) > 10_000

    def matched(texts):
        keys = set()
        for t in texts:
            w = WORD.findall(t.lower())
            for i in range(max(0, len(w) - N + 1)):
                key = hash(tuple(w[i : i + N]))
                if key in probe:
                    keys.add(key)
        return keys

    lm_texts = [d for s in SOURCES for d in source_docs(root, s, "lm")]
    roles = paradetox_by_role()
    discovery = [x for r in ("discovery", "discovery_heldout") for p in roles[r] for x in (p.toxic, p.neutral)]
    judge = read_lines(data_file("jigsaw_detox_sentences/test_10k_toxic.txt")) + read_lines(
        data_file("jigsaw_detox_sentences/test_10k_normal.txt")
    )
    for name, texts in (("lm", lm_texts), ("discovery", discovery), ("judge_train", judge)):
        keys = matched(texts)
        found = {probe[k] for k in keys}
        # a shared 8-word stock phrase is possible; a whole prompt must never be trained on
        whole = [p for p in found if shingles(p) <= keys]
        assert not whole, f"evaluation prompts inside the {name} split: {whole[:2]}"
        assert len(found) <= 0.005 * len(eval_prompts), f"{name}: {len(found)} prompts share an 8-gram"


def test_roles_are_disjoint(root):
    roles = paradetox_by_role(normalise=False)
    keys = {r: {normalise_key(p.toxic) for p in ps} for r, ps in roles.items()}
    assert not keys["lm"] & keys["discovery"]
    assert not keys["lm"] & keys["discovery_heldout"]
    assert not keys["discovery"] & keys["discovery_heldout"]
    assert sum(map(len, roles.values())) > 11_000
    judge_train = {normalise_key(t) for t in read_lines(root / "jigsaw_detox_sentences/test_10k_toxic.txt")}
    judge_test = {normalise_key(t) for t in read_table(root / "davidson_hate_offensive/labeled_data.csv", "tweet")}
    assert len(judge_train & judge_test) <= 5
    lm_jigsaw = {normalise_key(t) for t in read_lines(root / "jigsaw_detox_sentences/dev_toxic.txt")}
    assert len(lm_jigsaw & judge_train) <= 0.01 * len(judge_train)


def test_heldout_chunks_are_not_trained_on(root):
    src = SOURCES[0]
    train = set(source_docs(root, src, "lm"))
    held = set(source_docs(root, src, "lm_heldout"))
    assert held and train and not train & held


def test_training_mix_weighs_every_source_once():
    assert list(WEIGHTS) == [s.name for s in SOURCES]


def test_rtp_dev_test_split_is_stable_disjoint_and_complete():
    from saedetox.data.roles import reference_prompts, rtp_split

    for base in ("challenging", "nontoxic"):
        every = reference_prompts(base)
        dev, test = reference_prompts(f"{base}:dev"), reference_prompts(f"{base}:test")
        assert len(dev) + len(test) == len(every)
        assert {p.uid for p in dev}.isdisjoint({p.uid for p in test})
        assert 0.2 < len(dev) / len(every) < 0.4
        assert all(rtp_split(p) == "dev" for p in dev)
    # keyed by the RTP id, not by file order: a shuffled copy splits the same way
    every = reference_prompts("challenging")
    assert [rtp_split(p) for p in every[::-1]] == [rtp_split(p) for p in every][::-1]


def test_unknown_prompt_split_is_one_clear_error():
    import pytest

    from saedetox.data.roles import reference_prompts
    from saedetox.errors import SaedetoxError

    with pytest.raises(SaedetoxError, match="Unknown prompt set 'challenging:train'"):
        reference_prompts("challenging:train")
