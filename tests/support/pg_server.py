"""A throw-away PostgreSQL server on loopback for the distributed-search tests.

``.ci/run`` installs the Debian packages and starts one server for the whole test run
(``QUADRANAS_TEST_POSTGRES`` holds its URL). Tests that must stop and restart a server start
their own with :func:`start_server` in a temporary directory. ``initdb`` refuses to run as root,
so as root the server runs as the ``postgres`` system user (``runuser``).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PgServer", "find_pg_bin", "free_port", "start_server"]


def find_pg_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/*/bin`` holding initdb and pg_ctl, else one on PATH."""
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2])
                    if p.split("/")[-2].isdigit() else 0, reverse=True):
        if Path(d, "initdb").exists() and Path(d, "pg_ctl").exists():
            return Path(d)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_server_user(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@dataclass
class PgServer:
    bin_dir: Path
    data_dir: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://quadranas@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(_as_server_user([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), *args]),
                              capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.data_dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        proc = self._ctl("-o", opts, "-l", str(self.data_dir / "server.log"), "-w", "start")
        if proc.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {proc.stdout}{proc.stderr}")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-m", mode, "-w", "stop")


def start_server(base: Path | None = None) -> PgServer:
    """initdb a cluster under ``base`` (default: a new directory in /tmp, which the ``postgres``
    user can reach — pytest's own temporary directories are private to root) with trust auth
    and user ``quadranas``, and start it on a free port."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        raise RuntimeError("no PostgreSQL server binaries (initdb, pg_ctl); install the postgresql package")
    if base is None:
        base = Path(tempfile.mkdtemp(prefix="quadranas-pg-"))
        os.chmod(base, 0o755)
    data = Path(base) / "pgdata"
    data.mkdir(parents=True)
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(data, "postgres")
    proc = subprocess.run(_as_server_user([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "quadranas",
                                           "--no-sync"]), capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"initdb failed: {proc.stdout}{proc.stderr}")
    server = PgServer(bin_dir=bin_dir, data_dir=data, port=free_port())
    server.start()
    return server
