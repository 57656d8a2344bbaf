"""The local FHIR R4 server for tests and the demo, seen from Python.

The server itself is Node code in this folder (``server.mjs``, on Medplum's FhirRouter and an
in-memory repository); this module installs its npm dependencies and runs it as a child
process::

    with DevFhirServer() as server:          # port 0: a free port
        requests.get(f"{server.base_url}/metadata")
        server.reset()                        # empty the store between tests

It is a development tool: in memory (or one JSON file with ``data``), no security, one
request at a time.
"""

from __future__ import annotations

import fcntl
import os
import queue
import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import IO, NoReturn, Self

import requests

from adapter.errors import DevServerError

SERVER_DIR = Path(__file__).resolve().parent
SERVER_SCRIPT = SERVER_DIR / "server.mjs"
LOCK_FILE = SERVER_DIR / "package-lock.json"
NODE_MODULES = SERVER_DIR / "node_modules"
# npm ci writes this file last, so its age tells whether node_modules matches the lock file.
INSTALL_MARKER = NODE_MODULES / ".package-lock.json"

MIN_NODE_MAJOR = 20
READY_PATTERN = re.compile(r"^dev-fhir ready on (?P<url>http://\S+/fhir)\s*$")
INSTALL_HINT = "install Node.js 20 or newer with npm (e.g. `apt-get install nodejs npm`)"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise DevServerError(f"`{name}` was not found on PATH: {INSTALL_HINT}")
    return path


def node_command(script: Path = SERVER_SCRIPT) -> list[str]:
    """The command that starts a server script: node, plus the flags its version needs."""
    node = _tool("node")
    try:
        version = subprocess.run(
            [node, "--version"], capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        raise DevServerError(f"cannot run `{node} --version`: {exc}") from exc
    match = re.match(r"v(\d+)\.", version)
    major = int(match.group(1)) if match else 0
    if major < MIN_NODE_MAJOR:
        raise DevServerError(
            f"Node.js {version or '?'} is too old for the dev FHIR server: {INSTALL_HINT}"
        )
    # @medplum/core touches WebSocket when imported; Node 20-21 only have it behind this flag
    # (Node 22+ has it by default).
    flags = ["--experimental-websocket"] if major < 22 else []
    return [node, *flags, str(script)]


def needs_install() -> bool:
    """True when node_modules is missing or older than package-lock.json."""
    if not INSTALL_MARKER.exists():
        return True
    return INSTALL_MARKER.stat().st_mtime < LOCK_FILE.stat().st_mtime


def ensure_installed() -> None:
    """Install the server's npm dependencies (``npm ci``) unless they are already up to date.

    Several processes may start servers at once (parallel test runs): a file lock makes one
    of them install while the others wait, since ``npm ci`` first deletes node_modules.
    """
    if not needs_install():
        return
    lock_path = Path(tempfile.gettempdir()) / f"trialbridge-dev-fhir-{os.getuid()}.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if needs_install():
                _npm_ci()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _npm_ci() -> None:
    npm = _tool("npm")
    try:
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=SERVER_DIR,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise DevServerError(f"`npm ci` could not run in {SERVER_DIR}: {exc}") from exc
    if result.returncode != 0:
        # npm states the cause first, then prints usage or a log path.
        output = [
            line for line in (result.stderr or result.stdout).splitlines() if "warn" not in line
        ]
        head = "\n".join(output[:8])
        raise DevServerError(
            f"`npm ci` failed in {SERVER_DIR} (exit {result.returncode}); npm said:\n{head}"
        )


class DevFhirServer:
    """Runs the dev FHIR server as a child process until :meth:`stop` (or the ``with`` ends).

    ``port=0`` lets the system pick a free port; ``base_url`` then says which. ``data`` keeps
    the store in a JSON file across restarts. The server's log goes to ``stderr`` when given
    (e.g. ``sys.stderr``), otherwise to a temporary file that is quoted if it fails to start.
    ``require_auth`` (an issuer URL, e.g. :class:`adapter.dev_fhir.auth.DevAuthServer`'s)
    makes every request but ``GET /metadata`` need a SMART access token from that issuer,
    for ``audience`` (default: the server's own base URL), whose scopes allow it.
    """

    script = SERVER_SCRIPT
    ready_pattern = READY_PATTERN
    what = "the dev FHIR server"

    def __init__(
        self,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        data: str | os.PathLike[str] | None = None,
        log_requests: bool = False,
        stderr: IO[str] | None = None,
        startup_timeout: float = 60.0,
        require_auth: str | None = None,
        audience: str | None = None,
    ) -> None:
        self.require_auth = require_auth
        self.audience = audience
        self.port = port
        self.host = host
        self.data = Path(data) if data is not None else None
        self.log_requests = log_requests
        self.startup_timeout = startup_timeout
        self._stderr = stderr
        self._log_file: IO[str] | None = None
        self._process: subprocess.Popen[str] | None = None
        self._base_url: str | None = None
        self._pump: threading.Thread | None = None
        self._session: requests.Session | None = None

    @property
    def base_url(self) -> str:
        """The FHIR base, e.g. ``http://127.0.0.1:41234/fhir`` (the issuer, for the auth server)."""
        if self._base_url is None:
            raise DevServerError(f"{self.what} is not running: call start() first")
        return self._base_url

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> Self:
        """Install if needed, start the server and wait for its ready line."""
        if self.running:
            return self
        ensure_installed()
        command = [*node_command(self.script), "--port", str(self.port), "--host", self.host]
        command += self._arguments()
        # With stdin a pipe we hold, the server exits on its own if this process dies.
        command.append("--exit-on-stdin-close")
        if self._stderr is None:
            self._log_file = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115
        try:
            self._process = subprocess.Popen(
                command,
                cwd=SERVER_DIR,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr or self._log_file,
                text=True,
                encoding="utf-8",
            )
        except OSError as exc:
            raise DevServerError(f"cannot start {self.what} ({command[0]}): {exc}") from exc
        self._base_url = self._wait_ready(self._process)
        self._session = requests.Session()
        return self

    def _arguments(self) -> list[str]:
        """The script's own options."""
        arguments: list[str] = []
        if self.data is not None:
            arguments += ["--data", str(self.data)]
        if self.log_requests:
            arguments.append("--log-requests")
        if self.require_auth is not None:
            arguments += ["--require-auth", self.require_auth]
        if self.audience is not None:
            arguments += ["--audience", self.audience]
        return arguments

    def _wait_ready(self, process: subprocess.Popen[str]) -> str:
        # A thread reads stdout so the wait can time out; it then keeps draining the pipe.
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                lines.put(line)
            lines.put(None)

        self._pump = threading.Thread(target=pump, name="dev-fhir-stdout", daemon=True)
        self._pump.start()
        while True:
            try:
                line = lines.get(timeout=self.startup_timeout)
            except queue.Empty:
                self._fail(f"did not report ready within {self.startup_timeout:.0f} s")
            if line is None:
                self._fail(f"exited with status {process.wait()} before it was ready")
            match = self.ready_pattern.match(line)
            if match:
                return match.group("url")

    def _fail(self, what: str) -> NoReturn:
        log = self._read_log()
        self.stop()
        detail = f":\n{log}" if log else ""
        raise DevServerError(f"{self.what} {what}{detail}")

    def _read_log(self) -> str:
        if self._log_file is None:
            return ""
        self._log_file.seek(0)
        return "\n".join(self._log_file.read().strip().splitlines()[-20:])

    def reset(self) -> None:
        """Empty the store (all resources and their history)."""
        root = self.base_url.removesuffix("/fhir")
        session = self._session or requests.Session()
        self._session = session
        try:
            response = session.post(f"{root}/admin/reset", timeout=30)
        except requests.RequestException as exc:
            raise DevServerError(f"cannot reset the dev FHIR server: {exc}") from exc
        if response.status_code != 200:
            raise DevServerError(f"reset failed with HTTP {response.status_code}: {response.text}")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s). Safe to call twice."""
        process, self._process = self._process, None
        self._base_url = None
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if self._pump is not None:
                self._pump.join(timeout=10)  # it stops at end of output, now that the server exited
                self._pump = None
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    stream.close()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._session is not None:
            self._session.close()
            self._session = None

    def wait(self) -> int:
        """Block until the server exits; returns its exit status."""
        if self._process is None:
            raise DevServerError("the dev FHIR server is not running")
        return self._process.wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


__all__ = ["DevFhirServer", "ensure_installed", "needs_install", "node_command"]
