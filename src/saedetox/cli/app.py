"""The ``saedetox`` command line: a thin layer over the Python API.

Every command turns :class:`~saedetox.errors.SaedetoxError` into one ``error: ...`` line and
exit code 2; nothing a user can mistype produces a traceback.

Each command module imports the pipeline it drives inside the command, on purpose: the
pipeline pulls in torch, transformers, scikit-learn and matplotlib (tens of seconds on a busy
machine), and ``saedetox --help`` or a mistyped option should answer at once.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from typing import Annotated

import click
import typer

from saedetox.cli.allocator import keep_large_buffers
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
from saedetox.errors import SaedetoxError, StaleRunError
from saedetox.progress import on_progress
from saedetox.version import __version__

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"saedetox {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """saedetox: find toxicity latents in SAEs, steer them away, and measure what it costs."""


COMMANDS = (
    "info",
    "generate",
    "export",
    "discover",
    "evaluate",
    "train-sae",
    "train-lm",
    "train-judge",
    "sweep",
    "splitting",
    "report",
    "demo",
)
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


#: commands whose output folder keeps finished work, so rerunning them continues where they stopped
RESUMABLE = ("evaluate", "sweep", "splitting", "demo", "train-lm")
#: what each exit status means (docs/cli.md, exit codes)
EXIT_OK, EXIT_BUG, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _usage_errors() -> tuple[type[BaseException], ...]:
    """Typer's usage-error classes: typer ≥ 0.16 vendors click as ``typer._click``; older typer uses click."""
    out: list[type[BaseException]] = [click.exceptions.ClickException]
    try:
        from typer._click.exceptions import ClickException as VendoredClickException  # deferred: private path

        out.append(VendoredClickException)
    except ImportError:
        pass
    return tuple(out)


def _interrupted(args: list[str]) -> None:
    command = shlex.join(["saedetox", *args])
    name = next((a for a in args if not a.startswith("-")), "")
    if name in RESUMABLE:
        typer.echo(f"interrupted; the run is resumable: rerun `{command}` to continue where it stopped.", err=True)
    else:
        typer.echo(f"interrupted; nothing more was written: rerun `{command}` to start again.", err=True)
    sys.exit(EXIT_INTERRUPTED)


_PARAM_RE = re.compile(r"(?<![\w.-])([a-z]+(?:_[a-z]+)+)(?![\w(])")


def cli_words(message: str, args: list[str]) -> str:
    """A library error in the command's words: API parameter names (``data_dir``) become its flags (``--data-dir``).

    Only names that are options of the command being run are rewritten; the rest is left as it is.
    """
    name = next((a for a in args if not a.startswith("-")), "")
    try:
        group = typer.main.get_command(app)
        command = getattr(group, "commands", {}).get(name)
    except Exception:  # noqa: BLE001 - a message is never worth a crash
        return message
    if command is None:
        return message
    flags = {opt for p in command.params for opt in getattr(p, "opts", []) if opt.startswith("--")}

    def flag(m: re.Match[str]) -> str:
        cand = "--" + m.group(1).replace("_", "-")
        return cand if cand in flags else m.group(1)

    return _PARAM_RE.sub(flag, message)


def _stale_hint(args: list[str]) -> str:
    if "sweep" in args[:1]:
        return "use --overwrite (or overwrite: true in the sweep config) to replace it, or another --out folder"
    return "use --overwrite to replace it, or another --out folder"


def main(argv: list[str] | None = None) -> None:
    """Entry point. Exit status: 0 done; 2 bad input, a usage error or a known failure (one ``error:`` line);
    130 interrupted (Ctrl-C; resumable commands say how to continue); 1 an unexpected error (a bug: one
    line, ``SAEDETOX_DEBUG=1`` shows the traceback)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        _run(args)
    except KeyboardInterrupt:
        _interrupted(args)


def _run(args: list[str]) -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    keep_large_buffers()  # large tensors reuse freed heap instead of fresh mmaps (cli/allocator.py)
    on_progress("terminal")  # the library is quiet; the command line shows its progress
    try:
        from transformers.utils import logging as hf_logging  # deferred: see the module docstring

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except Exception:  # noqa: BLE001
        pass
    try:
        code = app(args=args, standalone_mode=False, prog_name="saedetox")
    except StaleRunError as err:
        typer.echo(f"error: {err.with_hint(_stale_hint(args))}", err=True)
        sys.exit(EXIT_USAGE)
    except SaedetoxError as err:
        typer.echo(f"error: {cli_words(str(err), args)}", err=True)
        sys.exit(EXIT_USAGE)
    except _usage_errors() as err:
        if type(err).__name__ == "NoArgsIsHelpError":
            err.show()  # type: ignore[attr-defined]  # the help text, as `saedetox COMMAND` alone asks for
            sys.exit(EXIT_USAGE)
        message = " ".join(err.format_message().split())  # type: ignore[attr-defined]
        where = " ".join(a for a in args[:1] if not a.startswith("-"))
        hint = f" (see `saedetox {where} --help`)" if where and where in COMMANDS else " (see `saedetox --help`)"
        typer.echo(f"error: {message}{hint}", err=True)
        sys.exit(EXIT_USAGE if getattr(err, "exit_code", 2) == 2 else EXIT_BUG)
    except (click.exceptions.Abort, KeyboardInterrupt):
        raise KeyboardInterrupt from None
    except click.exceptions.Exit as ex:
        sys.exit(ex.exit_code)
    except Exception as err:  # noqa: BLE001
        if type(err).__name__ == "Abort":  # typer's vendored Abort (EOF on a prompt)
            raise KeyboardInterrupt from None
        if os.environ.get("SAEDETOX_DEBUG") == "1":
            raise
        first = str(err).splitlines()[0] if str(err) else ""
        typer.echo(f"error: {type(err).__name__}: {first} (set SAEDETOX_DEBUG=1 for the traceback)", err=True)
        sys.exit(EXIT_BUG)
    if code == EXIT_INTERRUPTED:  # typer turns Ctrl-C inside a command into Exit(130) and returns it
        raise KeyboardInterrupt
    if isinstance(code, int) and code:
        sys.exit(code)
