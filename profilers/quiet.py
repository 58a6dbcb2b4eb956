"""Keep the profiler's start/stop chatter off the terminal.

Kineto (inside ``torch.profiler``) writes ``USDT: … profiler_start/stop`` lines to the process's
stderr from C++ each time a profile starts and stops; with one profile per architecture they
would bury the progress bar. :func:`filtered_native_stderr` sends file descriptor 2 to a
temporary file for the duration of a block and then writes back every line that is not such a
trace line, so real warnings and errors still reach the user.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator

__all__ = ["filtered_native_stderr"]

_CHATTER = re.compile(r"^(USDT|INFO):\S* .*(SyncActivityProfilerHandler|ActivityProfiler|profiler_st)")


@contextlib.contextmanager
def filtered_native_stderr() -> Iterator[None]:
    fd = 2  # Kineto writes to the process's file descriptor 2, whatever sys.stderr is
    try:
        os.fstat(fd)
    except OSError:  # no fd 2 at all: nothing to filter
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), fd)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            kept = [line for line in tmp.read().decode(errors="replace").splitlines(keepends=True)
                    if not _CHATTER.match(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
