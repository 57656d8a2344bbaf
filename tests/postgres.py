"""The PostgreSQL server the tests use: the one named by ``TRIALBRIDGE_TEST_POSTGRES_URL``,
or a throwaway cluster started from the installed PostgreSQL binaries in a temporary folder.

``make test`` must set itself up on a fresh machine, like ``make demo``: a developer's laptop
has no server on 127.0.0.1:5432 with trust authentication, so the suite starts its own
(``initdb`` + ``pg_ctl``, a free port, a socket folder of its own, stopped at the end).
``make postgres`` installs the binaries when they are missing. initdb refuses to run as
root, so as root the cluster is created and run as the ``postgres`` system user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ENV_VAR = "TRIALBRIDGE_TEST_POSTGRES_URL"


def _bindir() -> Path:
    """The folder holding initdb and pg_ctl (Debian keeps them out of PATH)."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError(
            f"no PostgreSQL binaries (initdb) found: run `make postgres` to install them, "
            f"or set {ENV_VAR} to a server the tests may use"
        )
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _run_as(user: str | None, argv: list[str]) -> None:
    command = ["runuser", "-u", user, "--", *argv] if user else argv
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip() or done.stdout.strip()}")


@contextmanager
def throwaway_cluster() -> Iterator[str]:
    """Start a fresh cluster in a temporary folder; yield its SQLAlchemy URL; remove it."""
    bindir = _bindir()
    user = "postgres" if os.geteuid() == 0 else None
    with tempfile.TemporaryDirectory(prefix="tb-pg-") as tmp:
        root = Path(tmp)
        data, sockets = root / "data", root / "sockets"
        sockets.mkdir()
        if user:
            entry = pwd.getpwnam(user)
            for path in (root, sockets):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        port = _free_port()
        _run_as(user, [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"])
        options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(root / "server.log")
        _run_as(
            user, [str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", log, "-w", "start"]
        )
        try:
            _run_as(
                user,
                [
                    str(bindir / "createdb"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-U",
                    "postgres",
                    "test",
                ],
            )
            yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/test"
        finally:
            _run_as(user, [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"])


@contextmanager
def postgres_for_tests() -> Iterator[str]:
    """The server named by the environment, else a throwaway cluster."""
    named = os.environ.get(ENV_VAR)
    if named:
        yield named
        return
    with throwaway_cluster() as url:
        yield url
