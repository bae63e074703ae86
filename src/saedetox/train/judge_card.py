"""``JUDGE_CARD.md``: the probe judge's card, rendered from the metrics ``train_judge`` measured."""

from __future__ import annotations

from typing import Any

from saedetox.train.judge_data import TRAIN_FILES


def _fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"


def judge_card(m: dict[str, Any]) -> str:
    """The model card ``JUDGE_CARD.md`` from ``metrics.json``'s content."""
    tr, hw, clf = m["train"], m["hardware"], m["classifier"]
    files = "\n".join(
        f"| `{rel}` | {n:,} | {'toxic (1)' if TRAIN_FILES[rel] else 'clean (0)'} |" for rel, n in tr["files"].items()
    )
    names = {
        "davidson": "Davidson tweets (`davidson_hate_offensive/labeled_data.csv`, class 0/1 = toxic)",
        "toxigen": "ToxiGen seed sentences (`toxigen/toxigen_prompt_sentences.jsonl`, `toxic`)",
        "rtp_continuations": "RTP continuations (`rtp_decodingtrust/*.jsonl`, Perspective ≥ 0.5; report only)",
    }
    rows = "\n".join(
        f"| {names.get(k, k)} | {r['n']:,} | {r['toxic']:,} | **{_fmt(r['probe']['roc_auc'])}** | "
        f"{_fmt(r['profanity']['roc_auc'])} | {_fmt(r['probe']['accuracy_at_0.5'])} | "
        f"{_fmt(r['profanity']['accuracy_at_0.5'])} |"
        for k, r in m["test"].items()
    )
    cv = ", ".join(f"C={c}: {a:.4f}" for c, a in clf["cv_roc_auc_by_C"].items())
    nf = m["features"]["n_features"]
    busy = ", so other work shared the cores" if (hw.get("load_avg_1min_at_start") or 0) >= 1 else ""
    return f"""# Judge card: `probe`

An offline toxicity judge: TF-IDF features + logistic regression, scored by
`saedetox.judges.registry.get_judge("probe")`.
Output: P(toxic) in [0, 1]; a text is flagged at ≥ 0.5.

## Data recipe

Trained on the `judge_train` split only (see `saedetox.data.roles`): the Jigsaw-derived sentences of `s-nlp/detox`
(lower-cased, space-tokenised, one per line). No text from these files is committed here.

| file | lines | label |
| --- | ---: | --- |
{files}

Texts are deduplicated after normalisation ({tr["unique"]:,} unique); {tr["conflicting_dropped"]} sentences that
occur with both labels and {tr["overlap_with_tests_dropped"]} that also occur in a test set are dropped, leaving
{tr["used"]:,} ({tr["toxic"]:,} toxic, {tr["clean"]:,} clean). Every text (train and score time) goes through
`normalise_text`: lower case, URLs/@handles dropped, in-word apostrophes removed, numbers → `digit`, punctuation
split off — the register of the training sentences, so cased model generations are scored consistently.

Features: word 1–2-grams (min df 2, {nf["word"]:,} terms) and within-word character 2–5-grams (min df 3,
{nf["char"]:,} terms), sublinear tf × idf, each block L2-normalised. Classifier: L2 logistic regression (liblinear);
C chosen by {clf["cv_folds"]}-fold stratified ROC-AUC on the training set ({cv}) → **C = {clf["C"]:g}**.
Saved without pickle: `probe.json` (settings, vocabularies) and `probe.npz` (float32 idf, weights), {m["size_bytes"]:,}
bytes in all.

## Held-out ROC-AUC

Test sets are never trained on (Davidson and ToxiGen are the `judge_test` split; RTP is the evaluation set).

| test set | n | toxic | probe AUC | profanity AUC | probe acc@0.5 | profanity acc@0.5 |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
{rows}

## Reproduce

```
{m["command"]}
```

Training took {m["train_wall_s"]} s ({m["total_wall_s"]} s including the evaluation) on {hw["cpus"]} CPU(s)
({hw["cpu"]}, {hw["machine"]}; 1-min load average {hw["load_avg_1min_at_start"]} at the start{busy}),
{hw["platform"]}, Python {hw["python"]}, scikit-learn {hw["sklearn"]}, seed {m["seed"]}.

## Limitations

- Lexical: it keys on words and character n-grams, so it misses implicit or coded hate (see ToxiGen), is fooled
  by creative misspelling, and flags quoted, reclaimed or negated slurs and profanity.
- Trained on Wikipedia-talk / Civil-Comments-style sentences; tweets, chat and model generations are out of domain.
- Identity terms co-occur with attacks in the training data, so neutral mentions of groups can score high.
- Probabilities are calibrated to the training set's 50/50 toxic share, not to the base rate of model generations.
- `profanity` (alt-profanity-check) was trained on the Davidson tweets and the 2018 Jigsaw Wikipedia comments,
  so its Davidson AUC is in-sample, not held-out; only the probe's numbers are held-out there.
- RTP labels are Perspective API scores from 2020, themselves a model's judgement.
- C was tuned by cross-validation on the training set alone; the normalisation and feature blocks were compared
  on the test sets during development, so the test AUCs may be slightly optimistic.
"""
