"""Methods a run evaluates: none, SAE steering, and the baselines (prompting, mean-difference, AurA, Model Surgery).

Each baseline is built from the same toxic/clean data as discovery (:mod:`saedetox.methods.contrast`).
"""
