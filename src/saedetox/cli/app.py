"""The ``saedetox`` command line: a thin layer over the Python API.

Every command turns :class:`~saedetox.errors.SaedetoxError` into one ``error: ...`` line and
exit code 2; nothing a user can mistype produces a traceback.

Each command module imports the pipeline it drives inside the command, on purpose: the
pipeline pulls in torch, transformers, scikit-learn and matplotlib (tens of seconds on a busy
machine), and ``saedetox --help`` or a mistyped option should answer at once.
"""

from __future__ import annotations

import os
import sys

import click
import typer

from saedetox.cli.compare import compare_cmd
from saedetox.cli.demo import demo_cmd
from saedetox.cli.discover import discover_cmd
from saedetox.cli.evaluate import evaluate_cmd
from saedetox.cli.export import export_cmd
from saedetox.cli.generate import generate_cmd
from saedetox.cli.info import info_cmd
from saedetox.cli.report import report_cmd
from saedetox.cli.sweep import splitting_cmd, sweep_cmd
from saedetox.cli.train import train_judge_cmd, train_lm_cmd, train_sae_cmd
from saedetox.errors import SaedetoxError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)


@app.callback()
def _root() -> None:
    """saedetox: find toxicity latents in SAEs, steer them away, and measure what it costs."""


for _name, _command in (
    ("info", info_cmd),
    ("generate", generate_cmd),
    ("export", export_cmd),
    ("discover", discover_cmd),
    ("evaluate", evaluate_cmd),
    ("train-sae", train_sae_cmd),
    ("train-lm", train_lm_cmd),
    ("train-judge", train_judge_cmd),
    ("sweep", sweep_cmd),
    ("splitting", splitting_cmd),
    ("report", report_cmd),
    ("compare", compare_cmd),
    ("demo", demo_cmd),
):
    app.command(_name)(_command)


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line and exit code 2, never a traceback."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from transformers.utils import logging as hf_logging  # deferred: see the module docstring

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except Exception:  # noqa: BLE001
        pass
    try:
        app(args=argv, standalone_mode=False, prog_name="saedetox")
    except SaedetoxError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)
    except click.exceptions.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        typer.echo("interrupted; rerun the same command to resume where it stopped.", err=True)
        sys.exit(130)
    except click.exceptions.Exit as ex:
        sys.exit(ex.exit_code)
    except Exception as err:  # noqa: BLE001
        if os.environ.get("SAEDETOX_DEBUG") == "1":
            raise
        first = str(err).splitlines()[0] if str(err) else ""
        typer.echo(f"error: {type(err).__name__}: {first} (set SAEDETOX_DEBUG=1 for the traceback)", err=True)
        sys.exit(1)
