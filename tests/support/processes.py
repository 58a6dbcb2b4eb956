"""Killing a real command at a chosen moment, for the tests of what a kill leaves behind."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from support import REPO


def sigkill_when(cmd: Sequence[str], ready: Callable[[], bool], *, log: Path, env: dict[str, str], what: str,
                 timeout_s: float = 240.0) -> subprocess.Popen:
    """Run ``cmd`` (output to ``log``) until ``ready()`` holds, then SIGKILL it; fail the test, with
    the log, if it exits first or ``what`` does not happen within ``timeout_s``. The process is
    reaped whatever happens; returns it."""
    with open(log, "w") as fh:
        proc = subprocess.Popen(list(cmd), stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        try:
            deadline = time.monotonic() + timeout_s
            while not ready():
                if proc.poll() is not None:
                    pytest.fail(f"the command exited (code {proc.returncode}) before {what}:\n{log.read_text()}")
                if time.monotonic() > deadline:
                    pytest.fail(f"no {what} within {timeout_s} s:\n{log.read_text()}")
                time.sleep(0.02)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return proc
