"""Design checks in another pod: the check server and its client (the ``remote`` boundary).

On a cluster the agent pod holds the LLM key and the store's credentials, so design code must
not run there. Each design session gets a *check pod* of its own, with no secret, no
service-account token and a NetworkPolicy that lets in only its session's agent pod and lets
nothing out. Its one process is :func:`serve` (``genesys check-server``), an HTTP server that
starts sandboxes (:class:`genesys.sandbox.runner.Sandbox`, with the pod's own boundary, usually
``container``) and relays what they say. The agent's checks use :class:`RemoteSandbox` in place of
a local sandbox; everything else of a check (the probes, the verdicts, the report) stays in the
agent, which trusts nothing the check pod sends beyond what it would trust from a local sandbox.

The wire, over one ``POST /v1/sandbox`` per sandbox:

- request: a JSON object ``{"request": ..., "limits": ..., "nonce": ..., "files": {name: base64}}``
  (``files`` are the inputs the sandbox reads under ``in/``: the probe tokens);
- response: lines. A line that starts with ``{`` is one of the supervisor's report lines as it
  came (the client checks its schema and nonce as for a local sandbox); ``#tail <json string>``
  is the sanitised end of the sandbox's output and ``#problem <json string>`` why no final report
  came; then the server closes the connection and kills the sandbox. A client that goes away
  kills its sandbox too.

``GET /healthz`` answers ``ok``, ``GET /status`` the running and served sandboxes, and
``POST /v1/shutdown`` stops the server (the agent sends it when its session ends). A server
that has had no request for ``idle_seconds`` stops by itself.

What must stay true: the client reads at most one report line of :data:`MAX_REPORT_BYTES` at a
time and believes only lines with its own nonce; the server never runs design code in its own
process and refuses to start in ``container`` mode where it can see a credential (a
service-account token or a credential-like variable), because there the pod is the boundary.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import http.client
import http.server
import json
import logging
import os
import select
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar
from urllib.parse import urlsplit

from genesys.sandbox.boundary import (
    CHECK_SERVER_VAR,
    Boundary,
    SandboxUnavailableError,
    requested_boundary,
    resolve_boundary,
)
from genesys.sandbox.env import SECRET_MARKERS
from genesys.sandbox.runner import (
    MAX_LOG_BYTES,
    BaseSandbox,
    Sandbox,
    SandboxLimits,
    sanitised_tail,
)
from genesys.sandbox.supervisor import set_dumpable

log = logging.getLogger(__name__)

PORT = 8470
MAX_REQUEST_BYTES = 256 * 1024 * 1024
"""A sandbox request with its probe tokens (the largest rung's micro-batch) fits easily."""
WAIT_VAR = "GENESYS_CHECK_SERVER_WAIT"
DEFAULT_WAIT_SECONDS = 900.0
"""How long a client waits for the check pod to answer at first (scheduling, a new node)."""
TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/token"
TAIL = b"#tail "
PROBLEM = b"#problem "


# ----------------------------------------------------------------------------------- client


def server_address(url: str) -> tuple[str, int]:
    """``(host, port)`` of a check server URL (``http://host[:port]``)."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme != "http" or not parts.hostname:
        raise SandboxUnavailableError(f"{CHECK_SERVER_VAR}={url!r} is not an http://host:port URL")
    return parts.hostname, parts.port or PORT


def wait_seconds(environ: Mapping[str, str]) -> float:
    """How long to wait for the check server to answer at first (``GENESYS_CHECK_SERVER_WAIT``)."""
    text = environ.get(WAIT_VAR, "")
    try:
        return float(text) if text else DEFAULT_WAIT_SECONDS
    except ValueError:
        raise SandboxUnavailableError(f"{WAIT_VAR}={text!r} is not a number of seconds") from None


def wait_for_server(
    url: str, timeout: float, progress: Callable[[str], None] | None = None
) -> None:
    """Return once the check server answers ``/healthz``; raise when ``timeout`` passes first."""
    host, port = server_address(url)
    deadline = time.monotonic() + timeout
    announced = False
    problem = ""
    while True:
        connection = http.client.HTTPConnection(host, port, timeout=10)
        try:
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return
            problem = "it answered /healthz with an error"
        except (OSError, http.client.HTTPException) as exc:
            problem = str(exc) or type(exc).__name__
        finally:
            connection.close()
        if time.monotonic() >= deadline:
            raise SandboxUnavailableError(
                f"the check server at {url} did not answer within {timeout:.0f}s ({problem}); "
                "is the session's check pod scheduled and running?"
            )
        if not announced and progress is not None:
            progress(f"waiting for the check server at {url} ({problem})")
            announced = True
        time.sleep(1.0)


_ready: set[str] = set()
_ready_lock = threading.Lock()


def ensure_server(environ: Mapping[str, str] | None = None) -> str:
    """The check server's URL, once it has answered (waited for once per process)."""
    source = os.environ if environ is None else environ
    url = source.get(CHECK_SERVER_VAR, "")
    if not url:
        raise SandboxUnavailableError(f"{CHECK_SERVER_VAR} is not set")
    with _ready_lock:
        if url not in _ready:
            wait_for_server(url, wait_seconds(source), progress=lambda m: log.warning("%s", m))
            _ready.add(url)
    return url


def shutdown_server(url: str) -> bool:
    """Ask the check server to stop; True when it said it would."""
    host, port = server_address(url)
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request("POST", "/v1/shutdown", body=b"")
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def input_files(directory: Path) -> dict[str, str]:
    """The files under ``directory`` as ``{relative name: base64}``."""
    return {
        path.relative_to(directory).as_posix(): base64.b64encode(path.read_bytes()).decode()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


class RemoteSandbox(BaseSandbox):
    """A sandbox the check server runs; its report lines come back over the HTTP response."""

    def __init__(
        self,
        request: Mapping[str, Any],
        limits: SandboxLimits,
        *,
        environ: Mapping[str, str] | None = None,
        prepare: Callable[[Path], Mapping[str, Any]] | None = None,
    ) -> None:
        import tempfile

        super().__init__(limits)
        self._tail = ""
        self.connection: http.client.HTTPConnection | None = None
        url = ensure_server(environ)
        with tempfile.TemporaryDirectory(prefix="genesys-remote-") as directory:
            extra = dict(prepare(Path(directory))) if prepare is not None else {}
            files = input_files(Path(directory))
        body = json.dumps(
            {
                "request": {**request, **extra},
                "limits": _limits_dict(limits),
                "nonce": self.nonce,
                "files": files,
            }
        ).encode("utf-8")
        host, port = server_address(url)
        self.connection = http.client.HTTPConnection(
            host, port, timeout=limits.timeout_seconds + 60
        )
        try:
            self.connection.request(
                "POST", "/v1/sandbox", body=body, headers={"Content-Type": "application/json"}
            )
        except (OSError, http.client.HTTPException) as exc:
            self.end(f"the check server at {url} refused the sandbox: {exc}")
            return
        self.reader = threading.Thread(target=self._receive, daemon=True)
        self.reader.start()

    def _receive(self) -> None:
        assert self.connection is not None
        try:
            response = self.connection.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            self.end(f"the check server gave no answer: {exc}")
            return
        if response.status != 200:
            text = sanitised_tail(response.read(MAX_LOG_BYTES))
            self.end(f"the check server refused the sandbox ({response.status}): {text}")
            return
        self.read_messages(_ReportLines(response, self))

    def note(self, line: bytes) -> None:
        """A ``#tail`` or ``#problem`` line of the server (untrusted text, sanitised)."""
        for prefix in (TAIL, PROBLEM):
            if line.startswith(prefix):
                try:
                    text = json.loads(line[len(prefix) :])
                except ValueError:
                    text = ""
                text = sanitised_tail(str(text).encode("utf-8"))
                if prefix == TAIL:
                    self._tail = text
                elif text:
                    with self.changed:
                        self.problem = self.problem or text

    def reason(self) -> str:
        """Why no believable message came."""
        return self.problem or "the check server ended the sandbox without a report"

    def tail(self) -> str:
        """The sanitised end of the sandbox's output, as the check server sent it."""
        return self._tail

    def close(self) -> float:
        """Hang up: the check server kills the sandbox when its client goes away."""
        if self.connection is not None:
            with contextlib.suppress(OSError):
                if self.connection.sock is not None:
                    self.connection.sock.shutdown(2)
            self.connection.close()
        reader = getattr(self, "reader", None)
        if reader is not None:
            reader.join(timeout=5)
        self.end()
        return time.perf_counter() - self.started


@dataclass
class _ReportLines:
    """The response's report lines for :meth:`BaseSandbox.read_messages`; notes go aside."""

    response: http.client.HTTPResponse
    sandbox: RemoteSandbox

    def readline(self, limit: int) -> bytes:
        while True:
            line = self.response.readline(limit)
            if not line.startswith(b"#"):
                return line
            if not line.endswith(b"\n"):  # a note longer than a report line: not believed
                return b"{" + line  # fails the report's schema, with a clear reason
            self.sandbox.note(line)


def _limits_dict(limits: SandboxLimits) -> dict[str, Any]:
    return {item.name: getattr(limits, item.name) for item in fields(limits)}


# ----------------------------------------------------------------------------------- server


def visible_credentials(environ: Mapping[str, str], token_path: str = TOKEN_PATH) -> list[str]:
    """What credentials this process can see: credential-like variables, a token file."""
    found = sorted(
        name
        for name, value in environ.items()
        if value and any(marker in name.upper() for marker in SECRET_MARKERS)
    )
    if Path(token_path).exists():
        found.append(token_path)
    return found


def safe_name(name: str) -> PurePosixPath:
    """An input file's relative name; refuse anything that leaves the input directory."""
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or len(path.parts) > 4:
        raise ValueError(f"bad input file name {name!r}")
    return path


def sandbox_limits(given: Mapping[str, Any], ceiling: SandboxLimits) -> SandboxLimits:
    """The client's limits, none above the server's ``ceiling``."""
    known = {item.name for item in fields(SandboxLimits)}
    values = {name: value for name, value in given.items() if name in known}
    limits = SandboxLimits(**values)
    return SandboxLimits(
        timeout_seconds=min(float(limits.timeout_seconds), ceiling.timeout_seconds),
        memory_bytes=min(int(limits.memory_bytes), ceiling.memory_bytes),
        cpu_seconds=limits.cpu_seconds,
        max_processes=min(int(limits.max_processes), ceiling.max_processes),
        max_file_bytes=min(int(limits.max_file_bytes), ceiling.max_file_bytes),
        threads=min(int(limits.threads), ceiling.threads),
        audit_guard=bool(limits.audit_guard),  # the client is the trusted agent
        scratch_bytes=min(int(limits.scratch_bytes), ceiling.scratch_bytes),
    )


@dataclass
class CheckServer:
    """The check server's state: its boundary, limits, activity, and the stop signal."""

    boundary: Boundary
    ceiling: SandboxLimits
    idle_seconds: float
    max_sandboxes: int = 4
    last_activity: float = field(default_factory=time.monotonic)
    running: int = 0
    served: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def begin(self) -> bool:
        with self.lock:
            if self.running >= self.max_sandboxes:
                return False
            self.running += 1
            self.last_activity = time.monotonic()
            return True

    def finish(self) -> None:
        with self.lock:
            self.running -= 1
            self.served += 1
            self.last_activity = time.monotonic()

    def status(self) -> dict[str, Any]:
        """What the server is doing: its boundary, running and served sandboxes."""
        with self.lock:
            return {"boundary": self.boundary.value, "running": self.running, "served": self.served}

    def idle(self) -> bool:
        with self.lock:
            quiet = time.monotonic() - self.last_activity
            return self.running == 0 and quiet > self.idle_seconds

    def run_sandbox(
        self,
        body: Mapping[str, Any],
        write: Callable[[bytes], None],
        hung_up: threading.Event | None = None,
    ) -> None:
        """Start one sandbox for ``body`` and relay its lines through ``write``.

        When ``hung_up`` is set (the client went away) the sandbox is ended at once.
        """
        files = {
            safe_name(str(name)): base64.b64decode(str(data), validate=True)
            for name, data in dict(body.get("files") or {}).items()
        }
        limits = sandbox_limits(dict(body.get("limits") or {}), self.ceiling)
        nonce = str(body.get("nonce") or "")
        request = dict(body.get("request") or {})

        def prepare(directory: Path) -> Mapping[str, Any]:
            for name, data in files.items():
                target = directory / Path(*name.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            return {}

        sandbox = Sandbox(request, limits, self.boundary, prepare=prepare, nonce=nonce)
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                if hung_up is not None and hung_up.wait(0.5):
                    sandbox.end("the client went away")
                    return

        if hung_up is not None:
            threading.Thread(target=watch, daemon=True).start()
        try:
            deadline = time.monotonic() + limits.timeout_seconds
            first = sandbox.wait({"probes", "final"}, deadline)
            if first is not None:
                write(sandbox.lines[first.stage])
                if first.stage == "probes" and sandbox.wait({"final"}, deadline) is not None:
                    write(sandbox.lines["final"])
            if "final" not in sandbox.messages:
                write(PROBLEM + json.dumps(sandbox.reason()).encode() + b"\n")
            write(TAIL + json.dumps(sandbox.tail()).encode() + b"\n")
        finally:
            done.set()
            sandbox.close()


def _content_length(header: str | None) -> int:
    """The declared body length; 0 when absent, -1 when not a number."""
    try:
        return int(header or "0")
    except ValueError:
        return -1


def _json_object(data: bytes) -> dict[str, Any]:
    """``data`` parsed as a JSON object; ValueError otherwise."""
    body = json.loads(data)
    if not isinstance(body, dict):
        raise ValueError("the request is not a JSON object")
    return body


def _listen_for_hangup(
    connection: socket.socket, answered: threading.Event, hung_up: threading.Event
) -> None:
    """Set ``hung_up`` when the client closes its end, until ``answered`` is set.

    The client sends nothing more after its request, so end of file is its hang-up.
    """
    while not answered.is_set():
        try:
            readable, _, _ = select.select([connection], [], [], 0.5)
            if readable and not connection.recv(1, socket.MSG_PEEK):
                break
        except (OSError, ValueError):
            break
    hung_up.set()


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "genesys-check-server"
    protocol_version = "HTTP/1.0"  # one request per connection; the end of a body is the close

    @property
    def state(self) -> CheckServer:
        state: CheckServer = self.server.state  # type: ignore[attr-defined]
        return state

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)

    def _answer(self, status: int, text: str) -> None:
        data = (text + "\n").encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._answer(200, "ok")
        elif self.path == "/status":
            self._answer(200, json.dumps(self.state.status()))
        else:
            self._answer(404, "not found")

    def do_POST(self) -> None:
        route = self._POST_ROUTES.get(self.path)
        if route is None:
            self._answer(404, "not found")
        else:
            route(self)

    def _shutdown(self) -> None:
        self._answer(200, "stopping")
        self.state.stop.set()

    def _sandbox(self) -> None:
        body = self._request_body()
        if body is None:
            return
        if not self.state.begin():
            self._answer(503, "too many sandboxes at once")
            return
        hung_up, answered = threading.Event(), threading.Event()
        threading.Thread(
            target=_listen_for_hangup, args=(self.connection, answered, hung_up), daemon=True
        ).start()
        try:
            self._relay(body, hung_up)
        finally:
            answered.set()
            self.state.finish()

    _POST_ROUTES: ClassVar[dict[str, Callable[[_Handler], None]]] = {
        "/v1/shutdown": _shutdown,
        "/v1/sandbox": _sandbox,
    }

    def _request_body(self) -> dict[str, Any] | None:
        """The request's JSON object, or None once an error has been answered."""
        length = _content_length(self.headers.get("Content-Length"))
        if not 0 < length <= MAX_REQUEST_BYTES:
            self._answer(413, f"a sandbox request is 1 to {MAX_REQUEST_BYTES} bytes")
            return None
        try:
            return _json_object(self.rfile.read(length))
        except ValueError as exc:
            self._answer(400, f"bad request: {exc}")
            return None

    def _relay(self, body: dict[str, Any], hung_up: threading.Event) -> None:
        """Run the sandbox and stream its lines, until it ends or the client hangs up."""
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.end_headers()
            self.wfile.flush()
            self.state.run_sandbox(body, self._write, hung_up)
        except (ValueError, binascii.Error) as exc:
            with contextlib.suppress(OSError):
                self._write(PROBLEM + json.dumps(f"bad request: {exc}").encode() + b"\n")
        except OSError as exc:  # the client went away: the sandbox is closed already
            log.info("client went away: %s", exc)

    def _write(self, data: bytes) -> None:
        self.wfile.write(data)
        self.wfile.flush()


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    state: CheckServer


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``:PORT``) to listen on."""
    host, colon, port = text.rpartition(":")
    if not colon or not port.isdigit():
        raise ValueError(f"--listen {text!r} is not HOST:PORT")
    return host or "0.0.0.0", int(port)


def serve(
    listen: str,
    *,
    idle_seconds: float = 1800.0,
    ceiling: SandboxLimits | None = None,
    environ: Mapping[str, str] | None = None,
    token_path: str = TOKEN_PATH,
    ready: Callable[[tuple[str, int]], None] | None = None,
) -> int:
    """Serve sandboxes until shut down or idle; the exit status (2: refused to start)."""
    source = os.environ if environ is None else environ
    try:
        boundary = resolve_boundary(requested_boundary(None, source), source)
    except SandboxUnavailableError as exc:
        log.error("%s", exc)
        return 2
    if boundary is Boundary.REMOTE:
        log.error("a check server runs its sandboxes itself; GENESYS_SANDBOX=remote is circular")
        return 2
    if boundary is Boundary.CONTAINER:
        seen = visible_credentials(source, token_path)
        if seen:
            log.error(
                "refusing to run design code: with GENESYS_SANDBOX=container the pod is the "
                "boundary, and this one holds credentials (%s)",
                ", ".join(seen),
            )
            return 2
    set_dumpable(False)  # the nonces it holds: no same-uid process may read its memory
    state = CheckServer(boundary, ceiling or SandboxLimits(), idle_seconds)
    server = _Server(parse_listen(listen), _Handler)
    server.state = state
    address = server.server_address[:2]
    log.warning("check server on %s:%s (boundary %s)", address[0], address[1], boundary.value)
    if ready is not None:
        ready((str(address[0]), int(address[1])))
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
    )
    thread.start()
    try:
        while not state.stop.wait(1.0):
            if state.idle():
                log.warning("no request for %.0fs: stopping", idle_seconds)
                break
    finally:
        server.shutdown()
        server.server_close()
    log.warning("check server stopped after %d sandbox(es)", state.served)
    return 0


__all__ = [
    "PORT",
    "CheckServer",
    "RemoteSandbox",
    "ensure_server",
    "input_files",
    "parse_listen",
    "safe_name",
    "sandbox_limits",
    "serve",
    "server_address",
    "shutdown_server",
    "visible_credentials",
    "wait_for_server",
]
