"""Toxicity judges behind one batched interface: ``score(texts) -> [0, 1]``, higher = more toxic.

| name | what | needs |
| --- | --- | --- |
| ``profanity`` | alt-profanity-check (linear SVM on word n-grams) | nothing (offline) |
| ``probe`` | our TF-IDF + logistic-regression judge, see :mod:`saedetox.train.judge` | the committed folder |
| ``detoxify`` (= ``-original``), ``detoxify-unbiased`` | Detoxify, ``toxicity`` class | ``pip install detoxify`` |
| ``perspective`` | Google Perspective API, TOXICITY summary score | network + API key |

Every judge scores empty strings (never crashes on them) and batches large lists itself.
:func:`saedetox.judges.registry.get_judge` builds one by name.
"""
