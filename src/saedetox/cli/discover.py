"""``saedetox discover``: rank SAE latents by toxicity-specificity and write features.json."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from saedetox.cli.fields import with_options
from saedetox.cli.options import DataDirOpt, DeviceOpt, DtypeOpt, HookOpt, ModelOpt, load_lm
from saedetox.discover import DEFAULT_K, DEFAULT_MIN_AUROC, RANKINGS
from saedetox.discover.kgrid import AUTO_K_GRID, parse_k
from saedetox.discover.options import GateOptions
from saedetox.errors import SaedetoxError


@with_options
def discover_cmd(
    out: Annotated[str, typer.Option("--out", help="Where to write features.json.")] = "features.json",
    model: ModelOpt = "reference",
    sae: Annotated[str, typer.Option("--sae", help="SAE (release/id, local dir, 'reference').")] = "reference",
    method: Annotated[
        Literal[RANKINGS], typer.Option("--method", help="How latents are ranked.")  # type: ignore[valid-type]
    ] = "attribution",
    k: Annotated[
        str,
        typer.Option(
            "--k",
            help="How many latents to select: a number, or a comma-separated grid or 'auto' "
            f"({','.join(map(str, AUTO_K_GRID))}) from which the select split chooses.",
        ),
    ] = str(DEFAULT_K),
    min_auroc: Annotated[
        float, typer.Option("--min-auroc", help="Minimum AUROC per latent on the select split.")
    ] = DEFAULT_MIN_AUROC,
    pairs: Annotated[str | None, typer.Option("--pairs", help="ParaDetox-style TSV (toxic, neutral1).")] = None,
    toxic: Annotated[str | None, typer.Option("--toxic", help="Toxic texts (txt/jsonl/csv).")] = None,
    clean: Annotated[str | None, typer.Option("--clean", help="Clean texts (txt/jsonl/csv).")] = None,
    heldout_toxic: Annotated[
        str | None, typer.Option("--heldout-toxic", help="Held-out toxic texts (split 50/50 into select/test).")
    ] = None,
    heldout_clean: Annotated[
        str | None, typer.Option("--heldout-clean", help="Held-out clean texts (split 50/50 into select/test).")
    ] = None,
    field: Annotated[str, typer.Option("--field", help="Field/column for jsonl/csv files.")] = "text",
    max_pairs: Annotated[
        int | None,
        typer.Option("--max-pairs", help="Cap the data: N rank texts per side, N // 2 select and test texts."),
    ] = None,
    hook: HookOpt = None,
    chat: Annotated[
        bool, typer.Option("--chat", help="Wrap each text in the tokenizer's chat template (chat / instruct models).")
    ] = False,
    gate: GateOptions = GateOptions(),
    data_dir: DataDirOpt = None,
    dtype: DtypeOpt = "auto",
    device: DeviceOpt = "auto",
) -> None:
    """Rank SAE latents by toxicity-specificity and write features.json.

    Example: saedetox discover --sae reference --k 20 --out features.json
    """
    from saedetox.discover.features import write_features  # deferred: see saedetox.cli.app
    from saedetox.discover.rank_stats import METHODS
    from saedetox.discover.select import discover
    from saedetox.discover.sets import discovery_sets
    from saedetox.io import check_output_file
    from saedetox.model.chat import check_chat
    from saedetox.progress import note
    from saedetox.sae.load import load_sae
    from saedetox.sae.preflight import check_fit

    if method not in METHODS:
        raise SaedetoxError(f"Unknown discovery method '{method}': use one of {', '.join(METHODS)}.")
    try:
        k_value = parse_k(k)
    except SaedetoxError as e:
        raise SaedetoxError(f"--{e}") from None
    if not 0 <= min_auroc <= 1:
        raise SaedetoxError(f"--min-auroc must be in [0, 1], got {min_auroc}.")
    if max_pairs is not None and max_pairs < 2:
        raise SaedetoxError(f"--max-pairs must be at least 2, got {max_pairs}.")
    check_output_file(out)
    note("reading the discovery texts")
    sets = discovery_sets(pairs, toxic, clean, heldout_toxic, heldout_clean, field, data_dir).capped(max_pairs)
    lm = load_lm(model, dtype, device)
    if chat:
        check_chat(lm.tokenizer, lm.name)  # before the SAE is loaded
    note(f"loading SAE {sae}")
    s = load_sae(sae, lm)
    check_fit(lm, s, hook)
    obj = discover(
        lm, s, sets, method=method, k=k_value, min_auroc=min_auroc, hook=hook, chat=chat, gate=gate, data_dir=data_dir
    )
    write_features(obj, out)
    auc = obj["set_test_auroc"]
    shown = "n/a" if auc is None else f"{auc:.3f}"
    typer.echo(f"selected {obj['selected']} (set AUROC on the test split {shown}); wrote {out}")
    if obj.get("k_choice"):
        c = obj["k_choice"]
        aucs = ", ".join(f"k={g}: {c['select_auroc'][str(g)]:.3f}" for g in c["grid"])
        typer.echo(f"k = {c['chosen']} chosen on the select split (set detector AUROC {aucs})")
    if obj.get("gate"):
        g = obj["gate"]
        typer.echo(
            f"gate ({g['calibration']}): opens on {g['test_false_open']:.1%} of {g['test_windows']} held-out clean "
            f"windows of {g['window_words']} words"
        )
