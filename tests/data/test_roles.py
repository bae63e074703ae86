"""The reference world's splits are deterministic and disjoint; nothing trained on is evaluated on."""

from __future__ import annotations

import hashlib

import pytest

from saedetox.data.corpus import SOURCES, source_docs
from saedetox.data.location import data_file, resolve_data_dir
from saedetox.data.readers import read_lines, read_rtp, read_table
from saedetox.data.roles import (
    SHINGLE_WORDS,
    normalise_key,
    paradetox_by_role,
    paradetox_role,
    prompt_overlap,
    stable_unit,
)
from saedetox.train.corpus import WEIGHTS


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


def test_prompt_overlap_checks_short_prompts_whole():
    """A prompt shorter than the shingle has no shingle: it is looked for whole (an 8-gram check never saw it)."""
    short = "Shut up, you total fool"  # 5 words
    long = "one two three four five six seven eight nine ten"
    texts = ["and then: SHUT UP you total fool!! he said", "one two three four five six seven eight nine"]
    got = prompt_overlap([short, long, "you total idiot"], texts)
    assert got.whole == {short}
    assert got.shared == {short, long}  # the long prompt shares shingles but not all of them
    got = prompt_overlap([long], texts + ["three four five six seven eight nine ten"])
    assert got.whole == {long}  # every shingle occurs (across texts): the whole prompt is in the data
    # a short prompt must occur contiguously, inside one text
    assert not prompt_overlap([short], ["shut up you", "total fool"]).shared


def test_no_evaluation_prompt_appears_in_any_training_text(root, eval_prompts):
    """Every RTP prompt is looked up in every LM, SAE, discovery and judge text (short prompts whole)."""
    short = [p for p in eval_prompts if len(p.split()) < SHINGLE_WORDS]
    assert len(short) > 100  # 16% of the prompts: a shingle-only check would skip all of them
    lm_texts = [d for s in SOURCES for d in source_docs(root, s, "lm")]
    roles = paradetox_by_role()
    discovery = [x for r in roles if r != "lm" for p in roles[r] for x in (p.toxic, p.neutral)]
    judge = read_lines(data_file("jigsaw_detox_sentences/test_10k_toxic.txt")) + read_lines(
        data_file("jigsaw_detox_sentences/test_10k_normal.txt")
    )
    for name, texts in (("lm", lm_texts), ("discovery", discovery), ("judge_train", judge)):
        found = prompt_overlap(eval_prompts, texts)
        # a shared 8-word stock phrase is possible; a whole prompt must never be trained on
        assert not found.whole, f"evaluation prompts inside the {name} split: {sorted(found.whole)[:2]}"
        assert len(found.shared) <= 0.005 * len(eval_prompts), f"{name}: {len(found.shared)} prompts share an 8-gram"


def test_roles_are_disjoint(root):
    roles = paradetox_by_role(normalise=False)
    keys = {r: {normalise_key(p.toxic) for p in ps} for r, ps in roles.items()}
    names = list(keys)
    assert names == ["lm", "discovery", "discovery_select", "discovery_test"]
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not keys[a] & keys[b], (a, b)
    assert sum(map(len, roles.values())) > 11_000
    # discovery's select and test splits are about 10% each, by the same stable hash
    total = sum(map(len, roles.values()))
    for r in ("discovery_select", "discovery_test"):
        assert 0.08 * total < len(roles[r]) < 0.12 * total
    judge_train = {normalise_key(t) for t in read_lines(root / "jigsaw_detox_sentences/test_10k_toxic.txt")}
    judge_test = {normalise_key(t) for t in read_table(root / "davidson_hate_offensive/labeled_data.csv", "tweet")}
    assert len(judge_train & judge_test) <= 5
    lm_jigsaw = {normalise_key(t) for t in read_lines(root / "jigsaw_detox_sentences/dev_toxic.txt")}
    assert len(lm_jigsaw & judge_train) <= 0.01 * len(judge_train)


def test_lm_bucket_is_the_one_the_committed_lm_was_trained_on():
    """Splitting discovery three ways must not move a pair into or out of the LM's training bucket."""
    roles = paradetox_by_role(normalise=False)
    keys = sorted(normalise_key(p.toxic) for p in roles["lm"])
    assert len(keys) == 3615
    assert hashlib.sha1("\n".join(keys).encode()).hexdigest() == "7808d3a792178647ed1330f4a2218732ffb398c0"


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


def test_the_mixed_set_is_both_sets_split_alike():
    from saedetox.data.roles import reference_prompts

    for split in ("", ":dev", ":test"):
        mixed = reference_prompts(f"mixed{split}")
        assert mixed == reference_prompts(f"challenging{split}") + reference_prompts(f"nontoxic{split}")
    test = reference_prompts("mixed:test")
    assert 0.4 < sum(p.challenging for p in test) / len(test) < 0.6  # both kinds, about half each


def test_unknown_prompt_split_is_one_clear_error():
    import pytest

    from saedetox.data.roles import reference_prompts
    from saedetox.errors import SaedetoxError

    with pytest.raises(SaedetoxError, match="Unknown prompt set 'challenging:train'"):
        reference_prompts("challenging:train")
