"""The command line asks glibc to keep large freed buffers; ``SAEDETOX_MALLOC=default`` leaves glibc alone."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = "from saedetox.cli.allocator import keep_large_buffers; print(keep_large_buffers())"


def _probe(env_value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "SAEDETOX_MALLOC"}
    if env_value is not None:
        env["SAEDETOX_MALLOC"] = env_value
    return subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True).stdout


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_glibc_accepts_the_thresholds_and_the_switch_turns_it_off():
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc: the allocator is left alone")
    assert _probe(None).strip() == "True"  # mallopt accepted both thresholds
    assert _probe("default").strip() == "False"


def test_the_command_line_sets_it(monkeypatch):
    from saedetox.cli import app

    calls = []
    monkeypatch.setattr(app, "keep_large_buffers", lambda: calls.append(1) or True)
    app.main(["--version"])  # returns: exit status 0
    assert calls == [1]
