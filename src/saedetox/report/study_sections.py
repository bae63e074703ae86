"""The condition studies in the report: robustness under attack and the secondary question (HTML and Markdown).

Both read only the studies' JSON (``robustness.json``, ``secondary.json``), so every number on the
page is the file's, formatted as the Markdown formats it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from saedetox.report.format import fmt_interval, k_note
from saedetox.report.format import fmt_signed as _f
from saedetox.report.robustness import robustness_markdown, selection_line
from saedetox.report.secondary import secondary_markdown, what
from saedetox.report.view import Section, b, card, cell, code, fmt_p, h3, row, table


def _ci(ci: list[float | None], nd: int = 3, sign: bool = True) -> str | None:
    """A cell's interval, or None (no interval shown) when a bound is missing."""
    return None if ci[0] is None or ci[1] is None else fmt_interval(ci, nd, sign)


def section_robustness(res: Mapping[str, Any]) -> Section:
    """Each run's toxicity clean and under each attack, the increases, and the pre-registered pair's answer."""
    what_ = "toxicity probability" if res["metric"] == "tox_prob" else "EMT"
    blocks: list[dict[str, Any]] = [
        card(
            [
                b("Pre-registered: "),
                f"does {res['primary']}'s {what_} (judge {res['judge']}, k = {res['k']} samples per prompt) rise "
                f"less under attack than {res['baseline']}'s, by at least {res['goal']:.0%} (relative), with the "
                "paired 95% CI of the difference of increases below zero? Increases are attacked − clean per "
                f"prompt; CIs are bootstraps over prompts ({res['n_boot']} resamples), "
                "p the bootstrap p (the BCa interval's test inversion: the CI excludes 0 exactly when p < 0.05).",
            ],
            *([selection_line(res)] if res.get("selection") else []),
        )
    ]
    for a, block in res["attacks"].items():
        h = block["headline"]
        blocks += [
            h3(f"{a}: {'yes' if h['met'] else 'no'}"),
            card(
                [
                    f"increase {res['primary']} {_f(h['increase_a'], sign=True)} vs {res['baseline']} "
                    f"{_f(h['increase_b'], sign=True)}: difference ",
                    b(_f(h["diff"], sign=True)),
                    f" {_ci(h['ci']) or '–'}, p {fmt_p(h['p'])}, relative reduction "
                    f"{_f(h['relative_reduction'], 2)} {_ci(h['relative_ci'], 2) or '–'} over {h['n']} prompts "
                    f"(goal {'met' if h['met'] else 'not met'}).",
                ]
            ),
            table(
                ["run", "family", f"clean PPL ratio to {res['origin']}", "clean", "attacked", "increase [95% CI]", "p"],
                [
                    row(
                        [
                            cell(segments=[code(r)]),
                            res["families"][r],
                            _f(x["clean_ppl_ratio"]),
                            _f(x["clean"]),
                            _f(x["attacked"]),
                            cell(_f(x["increase"], sign=True), ci=_ci(x["ci"])),
                            fmt_p(x["p"]),
                        ]
                    )
                    for r, x in block["runs"].items()
                ],
                left=2,
            ),
        ]
        if block["pairs"]:
            blocks.append(
                table(
                    ["SAE run − baseline", "difference of increases [95% CI]", "p", "relative reduction [95% CI]"],
                    [
                        row(
                            [
                                f"{p['sae']} − {p['baseline']}",
                                cell(_f(p["diff"], sign=True), ci=_ci(p["ci"])),
                                fmt_p(p["p"]),
                                cell(_f(p["relative_reduction"], 2), ci=_ci(p["relative_ci"], 2)),
                            ]
                        )
                        for p in block["pairs"]
                    ],
                )
            )
    note = k_note(res["k"])
    if note:
        blocks.append(card(note))
    return Section("robustness", "Robustness under attack", blocks)


def section_secondary(res: Mapping[str, Any]) -> Section:
    """The secondary question: each pair's paired difference on the other prompt set, and each run there."""
    blocks: list[dict[str, Any]] = [
        card(
            [b("Secondary question"), " (pre-registered, not the primary answer). ", res["question"]],
            f"On {res['prompts']} ({res['n_prompts']} prompts), {what(res)}; differences a − b paired by prompt, "
            f"BCa 95% CIs over prompts ({res['n_boot']} resamples), "
            "p the bootstrap p (the BCa interval's test inversion: the CI excludes 0 exactly when p < 0.05).",
        ),
        table(
            ["a − b", "a", "b", "difference [95% CI]", "p", "PPL ratio a / b [95% CI]", "answer"],
            [
                row(
                    [
                        f"{p['a']} − {p['b']}",
                        _f(p["a_value"]),
                        _f(p["b_value"]),
                        cell(_f(p["diff"], sign=True), ci=_ci(p["ci"])),
                        fmt_p(p["p"]),
                        cell(_f(p["ppl_ratio"]), ci=_ci(p["ppl_ratio_ci"], sign=False)),
                        cell(segments=[b(p["answer"])]),
                    ]
                )
                for p in res["pairs"]
            ],
        ),
        table(
            ["run", "stands for", "toxicity probability", "EMT", "PPL", f"PPL ratio to {res['origin'] or '–'}"],
            [
                row(
                    [
                        cell(segments=[code(n)]),
                        r["entry"],
                        _f(r["tox_prob"]),
                        _f(r["emt"]),
                        _f(r["ppl"], 2),
                        _f(r["ppl_ratio"]),
                    ]
                )
                for n, r in res["runs"].items()
            ],
            left=2,
        ),
    ]
    note = k_note(res["k"])
    if note:
        blocks.append(card(note))
    return Section("secondary", "Secondary question", blocks)


def study_sections(robustness: Mapping[str, Any] | None, secondary: Mapping[str, Any] | None) -> list[Section]:
    """The studies' HTML sections, those that ran."""
    return ([section_secondary(secondary)] if secondary else []) + (
        [section_robustness(robustness)] if robustness else []
    )


def studies_markdown(robustness: Mapping[str, Any] | None = None, secondary: Mapping[str, Any] | None = None) -> str:
    """The studies' Markdown sections (empty when none ran), to follow the summary."""
    parts = ([secondary_markdown(secondary)] if secondary else []) + (
        [robustness_markdown(robustness)] if robustness else []
    )
    return "".join("\n" + p for p in parts)
