"""A Kubernetes API server on loopback for tests: kmock's emulator in a thread, made realistic.

kmock 0.8 (``kmock.KubernetesEmulator``) keeps objects in memory and serves the REST paths of
any resource it knows: create (POST), get, list, watch, PATCH (a JSON merge patch for a dict
body, a JSON patch for a list) and DELETE, with 404 and 409 as the Kubernetes ``Status`` the
official client understands. It is an asyncio (aiohttp) server, so this module runs it on an
event loop in a daemon thread, where synchronous clients (``kubernetes.client``) can reach it::

    with kmock_server() as url:                # the base URL, e.g. http://127.0.0.1:41234
        batch = kubernetes.client.BatchV1Api(api_client(url))

    with running_kmock() as kube:              # the handle: url, stored objects, pod logs
        kube.pod_logs["ns", "pod-1"] = "hello\\n"
        assert kube.object("batch/v1/jobs", "ns", "j") is not None

What the emulator here adds to kmock's (:class:`RealisticKubernetesEmulator`):

- the built-in resources are known from the start (kmock's bundled list, a recent K3s's API
  groups: :func:`bundled_resources`), so discovery and lists of not-yet-created kinds work;
- create answers ``201 Created``, as the API server does;
- an object created with ``metadata.generateName`` and no name gets that prefix and five random
  characters as its name (kopf names its Events so);
- created objects get ``metadata.uid``, ``resourceVersion`` (one counter for the server),
  ``creationTimestamp``, ``generation`` and, from the URL, ``namespace``; every PATCH moves
  ``resourceVersion`` on, and a merge patch that changes ``spec`` moves ``generation`` on;
- lists carry ``kind`` (``<Kind>List``), ``apiVersion`` and ``metadata.resourceVersion``, and
  honour ``labelSelector`` (``k=v``, ``k==v``, ``k!=v``, ``k``, ``!k``, ``k in (a,b)``,
  ``k notin (a,b)``);
- creating a ``CustomResourceDefinition`` serves its resource from then on (``kubectl apply
  -f crds/`` works as on a cluster);
- a client asking for a ``Table`` of a custom resource (kubectl's server-side printing) gets
  one, with the CRD's printer columns (simple ``.a.b`` JSONPaths);
- a watch is any ``watch`` value the API server takes as true (the official client sends
  ``watch=True``; kmock alone takes only ``true``);
- core discovery (``/api/v1``) names its group version ``v1`` (kmock says ``/v1``, and kubectl
  then knows no core kind);
- a JSON patch whose ``test`` op fails is refused with 422, as the API server does (kmock says
  500, which kopf's finalizer handling retries blindly instead of re-reading);
- the Namespace resource itself works (kmock 0.8 misreads ``/api/v1/namespaces[/<name>]``;
  :func:`_parse_path` fixes its path parser), so ``kubectl create namespace`` works;
- ``GET .../pods/<name>/log`` answers the text in ``pod_logs[namespace, name]`` (empty when
  unset; 404 when the pod does not exist), honouring ``tailLines``.

What it does not emulate: controllers (a Job never gets pods or a status by itself: a test
patches ``/status``), garbage collection and ``propagationPolicy`` (DELETE removes the object
at once unless it has finalizers; its pods stay), ``fieldSelector``, strategic merge (a PATCH
merges dicts and replaces lists), PUT (kmock has no replace: it answers 500), admission and
validation (any JSON is stored as it is). A status PATCH merges into the whole object.

Tests that call the official client need :data:`KUBERNETES_CLIENT_WARNINGS` (a
``filterwarnings`` mark): the client trips a urllib3 DeprecationWarning on every response.

What must stay true: leaving the ``with`` block stops the server, its loop and its thread, so
no socket or thread outlives a test; every server starts empty; server-side failures that are
not Kubernetes API errors (a 500 from an unsupported request, a bug in a reaction) fail the
``with`` block at exit (``fail_on_server_errors=False`` turns that off). While it runs, kmock
redirects aiohttp's name resolution for its own host and port only.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gzip
import importlib.resources
import re
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import attrs
import kmock
import pytest
from kmock._internal import parsing, rendering  # Response: a payload with its own status

T = TypeVar("T")

_kmock_parse_path = parsing.parse_path


def _parse_path(path: str) -> parsing.ParsedPath:
    """kmock's path parser, plus the Namespace resource itself (``/api/v1/namespaces[/<n>]``).

    kmock 0.8 reads ``namespaces`` as the namespace prefix of every path, so listing, creating or
    reading a Namespace fails with a 500 (``kubectl create namespace``, kopf's namespace scans).
    """
    parts = path.split("?", 1)[0].strip("/").split("/")
    own = parts[:3] == ["api", "v1", "namespaces"] and (
        len(parts) <= 4 or (len(parts) == 5 and parts[4] in ("status", "finalize"))
    )
    if not own:
        return _kmock_parse_path(path)
    name = parts[3] if len(parts) >= 4 else None
    subresource = parts[4] if len(parts) == 5 else None
    return parsing.ParsedPath("", "v1", "namespaces", None, name, subresource)


parsing.parse_path = _parse_path  # the emulator is ours to fix; no client library is touched

_kmock_guess_k8s = parsing.guess_k8s
_TRUE = ("1", "t", "T", "TRUE", "true", "True")  # the API server's booleans (Go's ParseBool)


def _guess_k8s(k8s: parsing.ParsedPath, method: Any, query: dict[str, str]) -> kmock.action | None:
    """kmock's guess of the request's action, reading ``watch`` as the API server does.

    kmock 0.8 takes only ``watch=true`` for a watch; the official Python client sends
    ``watch=True``, which the API server accepts, and kmock would answer it with a list.
    """
    if query.get("watch") in _TRUE:
        query = {**query, "watch": "true"}
    return _kmock_guess_k8s(k8s, method, query)


parsing.guess_k8s = _guess_k8s

# kubernetes 36's client calls urllib3's deprecated HTTPResponse.getheader() on every response
# it parses; this project's pytest settings make warnings errors. Mark tests that use the client.
KUBERNETES_CLIENT_WARNINGS = pytest.mark.filterwarnings(
    "ignore:HTTPResponse.getheader:DeprecationWarning"
)
START_TIMEOUT_SECONDS = 10.0
_SELECTOR_TERMS = re.compile(r"(?:[^,(]|\([^)]*\))+")
_SET_TERM = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


# --------------------------------------------------------------------------- selectors


def label_selector_matches(selector: str, labels: Mapping[str, str]) -> bool:
    """Whether ``labels`` satisfy a Kubernetes label selector (every term must hold)."""
    for term in (t.strip() for t in _SELECTOR_TERMS.findall(selector or "")):
        if term and not _term_matches(term, labels):
            return False
    return True


def _term_matches(term: str, labels: Mapping[str, str]) -> bool:
    set_term = _SET_TERM.match(term)
    if set_term:
        key, operator, values = set_term.groups()
        wanted = {value.strip() for value in values.split(",")}
        inside = key in labels and labels[key] in wanted
        return inside if operator == "in" else not inside
    if "!=" in term:
        key, value = (part.strip() for part in term.split("!=", 1))
        return labels.get(key) != value
    if "=" in term:
        key, value = (part.strip() for part in re.split(r"==?", term, maxsplit=1))
        return labels.get(key) == value
    if term.startswith("!"):
        return term[1:].strip() not in labels
    return term in labels


def _tail(text: str, lines: str | None) -> str:
    if lines is None:
        return text
    kept = text.splitlines(keepends=True)[-int(lines) :] if int(lines) > 0 else []
    return "".join(kept)


# --------------------------------------------------------------------------- emulator


@attrs.define(kw_only=True)
class RealisticKubernetesEmulator(kmock.KubernetesEmulator):
    """kmock's emulator with the API server's answers tests rely on (see the module docstring)."""

    pod_logs: dict[tuple[str, str], str] = attrs.field(factory=dict)
    printer_columns: dict[str, list[dict[str, Any]]] = attrs.field(factory=dict)
    _last_resource_version: int = attrs.field(default=0, init=False)
    _indexed: set[Any] = attrs.field(factory=set, init=False)  # object keys in the indexes
    _by_name: dict[str, dict[Any, None]] = attrs.field(factory=dict, init=False)
    _by_namespace: dict[str | None, dict[Any, None]] = attrs.field(factory=dict, init=False)
    _object_resources: set[Any] = attrs.field(factory=set, init=False)

    def _update_index(self) -> list[Any]:
        """Index the objects stored since the last call; every object key, in stored order."""
        stored = self._objects._objects  # kmock's own dict of (resource, namespace, name) keys
        if len(self._indexed) != len(stored):
            for key in stored.keys() - self._indexed:
                resource, namespace, name = key
                self._by_name.setdefault(name, {})[key] = None
                self._by_namespace.setdefault(namespace, {})[key] = None
                self._object_resources.add(resource)
            self._indexed = set(stored)
        return list(stored)

    def _KubernetesEmulator__get_objs(  # noqa: N802  (kmock's private lookup, name-mangled)
        self, request: kmock.Request, strict: bool
    ) -> list[Any]:
        """kmock's object lookup, through indexes by name and namespace.

        kmock scans every object it ever stored (deleted ones too) on every request, so a
        request costs time in proportion to the objects created before; an API server looks
        objects up by key. The same check picks the same objects, in the same order.
        """
        every = self._update_index()
        if request.name is not None:
            candidates = list(self._by_name.get(request.name, {}))
        elif request.namespace is not None or strict:
            candidates = list(self._by_namespace.get(request.namespace, {}))
        else:
            candidates = every
        stored = self._objects._objects
        check = self._KubernetesEmulator__check  # type: ignore[attr-defined]
        return [
            stored[key]
            for key in candidates
            if key in stored and check(request, key[0], key[1], key[2], strict=strict)
        ]

    def _get_resources(self) -> list[Any]:
        """kmock's known resources, without scanning every stored object for theirs."""
        self._update_index()
        known = set(super(kmock.KubernetesEmulator, self)._get_resources())  # the DSL's own
        return list(known | self._object_resources)

    def _next_resource_version(self) -> str:
        self._last_resource_version += 1
        return str(self._last_resource_version)

    async def _handle(self, request: kmock.Request) -> Any:
        if request.action == kmock.action.CREATE and isinstance(request.data, dict):
            metadata = request.data.setdefault("metadata", {})
            if request.namespace:
                metadata.setdefault("namespace", request.namespace)
            if not metadata.get("name") and metadata.get("generateName"):
                metadata["name"] = metadata["generateName"] + uuid.uuid4().hex[:5]
            metadata.setdefault("uid", str(uuid.uuid4()))
            metadata.setdefault(
                "creationTimestamp", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            )
            metadata.setdefault("generation", 1)
            metadata["resourceVersion"] = self._next_resource_version()
        elif request.action == kmock.action.UPDATE:
            if isinstance(request.data, list):
                self._check_json_patch_tests(request)
            version = self._next_resource_version()
            if isinstance(request.data, dict):
                request.data.setdefault("metadata", {})["resourceVersion"] = version
                generation = self._next_generation(request)
                if generation is not None:
                    request.data["metadata"]["generation"] = generation
            elif isinstance(request.data, list):
                request.data.append(
                    {"op": "add", "path": "/metadata/resourceVersion", "value": version}
                )
        return await super()._handle(request)

    def _next_generation(self, request: kmock.Request) -> int | None:
        """The object's next ``metadata.generation`` when a merge patch changes its spec.

        The API server counts spec changes (never status or metadata ones) in ``generation``;
        controllers compare it with ``status.observedGeneration``.
        """
        resource, data = request.resource, request.data
        if (
            resource is None
            or request.name is None
            or request.subresource
            or not isinstance(data, dict)
        ):
            return None
        key = (resource, request.namespace, request.name)
        if key not in self.objects or self.objects[key].deleted or "spec" not in data:
            return None
        current = self.objects[key].raw
        merged = _merge_patch(current.get("spec"), data["spec"])
        if merged == current.get("spec"):
            return None
        return int((current.get("metadata") or {}).get("generation") or 1) + 1

    def _check_json_patch_tests(self, request: kmock.Request) -> None:
        """Refuse a JSON patch whose ``test`` ops fail with 422, as the API server does.

        kmock answers them with a 500; kopf (which tests ``resourceVersion`` when it adds or
        removes its finalizer) treats only a 422 as "the object moved on: retry later".
        """
        resource = request.resource
        if resource is None or request.name is None:
            return
        key = (resource, request.namespace, request.name)
        if key not in self.objects or self.objects[key].deleted:
            return
        current = self.objects[key].raw
        for op in cast(list[Mapping[str, Any]], request.data):
            if op.get("op") != "test":
                continue
            value: Any = current
            for part in str(op.get("path", "")).strip("/").split("/"):
                value = value.get(part) if isinstance(value, Mapping) else None
            if value != op.get("value"):
                message = f"the test of {op.get('path')} failed: {value!r} != {op.get('value')!r}"
                raise kmock.KubernetesError(status=422, reason="Invalid", message=message)

    async def _serve_create(self, request: kmock.Request) -> Any:
        created = await super()._serve_create(request)
        resource = request.resource
        if resource is not None and resource.plural == "customresourcedefinitions":
            self.register_crd(cast(Mapping[str, Any], request.data))
        return rendering.Response(status=201, payload=created)

    def register_crd(self, crd: Mapping[str, Any]) -> None:
        """Serve a CustomResourceDefinition's resource (what the API server does on create)."""
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        for version in spec.get("versions") or []:
            if not version.get("served", True):
                continue
            key = f"{spec['group']}/{version['name']}/{names['plural']}"
            self.printer_columns[key] = list(version.get("additionalPrinterColumns") or [])
            self.resources[key] = {
                "namespaced": spec.get("scope", "Namespaced") == "Namespaced",
                "kind": names.get("kind"),
                "singular": names.get("singular"),
                "verbs": ["create", "delete", "get", "list", "patch", "watch"],
                "shortnames": names.get("shortNames") or [],
                "categories": names.get("categories") or [],
                "subresources": list((version.get("subresources") or {}).keys()),
            }

    def _table_columns(self, request: kmock.Request) -> list[dict[str, Any]] | None:
        """The printer columns when a client asks for a Table of a custom resource."""
        accept = next((str(v) for k, v in request.headers.items() if k.lower() == "accept"), "")
        resource = request.resource
        if "as=Table" not in accept or resource is None:
            return None
        return self.printer_columns.get(f"{resource.group}/{resource.version}/{resource.plural}")

    async def _serve_list(self, request: kmock.Request) -> Any:
        listed = await self._serve_list_json(request)
        columns = self._table_columns(request)
        return listed if columns is None else table(columns, listed["items"])

    async def _serve_list_json(self, request: kmock.Request) -> Any:
        listed: dict[str, Any] = dict(cast(Mapping[str, Any], await super()._serve_list(request)))
        selector = request.params.get("labelSelector", "")
        resource = request.resource
        assert resource is not None  # a list request names its resource
        kind = self.resources[resource].kind or str(resource.plural).capitalize()
        group_version = f"{resource.group}/{resource.version}".lstrip("/")
        listed["items"] = [
            item
            for item in listed["items"]
            if label_selector_matches(selector, (item.get("metadata") or {}).get("labels") or {})
        ]
        listed["kind"] = f"{kind}List"
        listed["apiVersion"] = group_version
        listed["metadata"] = {"resourceVersion": str(self._last_resource_version)}
        return listed

    async def _serve_version(self, request: kmock.Request) -> Any:
        listed: dict[str, Any] = dict(
            cast(Mapping[str, Any], await super()._serve_version(request))
        )
        listed["groupVersion"] = str(listed["groupVersion"]).lstrip("/")  # core: "v1", not "/v1"
        return listed

    async def _serve_fetch(self, request: kmock.Request) -> Any:
        found = await super()._serve_fetch(request)  # 404 when the object does not exist
        if request.subresource != "log":
            columns = self._table_columns(request)
            return found if columns is None else table(columns, [found])
        text = self.pod_logs.get((str(request.namespace), str(request.name)), "")
        return _tail(text, request.params.get("tailLines")).encode("utf-8")


def _merge_patch(target: Any, patch: Any) -> Any:
    """``target`` after a JSON merge patch (RFC 7386)."""
    if not isinstance(patch, Mapping):
        return patch
    merged = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = _merge_patch(merged.get(key), value)
    return merged


def _json_path(obj: Any, path: str) -> Any:
    """The value at a simple JSONPath (``.a.b.c``), or None."""
    for part in path.strip(".").split("."):
        obj = obj.get(part) if isinstance(obj, Mapping) else None
    return obj


def table(columns: list[dict[str, Any]], items: list[Any]) -> dict[str, Any]:
    """A ``meta.k8s.io/v1`` Table of ``items`` (server-side printing, as kubectl asks for)."""
    definitions = [
        {"name": "Name", "type": "string", "format": "name", "description": "", "priority": 0}
    ]
    definitions += [
        {
            "name": c["name"],
            "type": c.get("type", "string"),
            "format": "",
            "description": c.get("description", ""),
            "priority": c.get("priority", 0),
        }
        for c in columns
    ]
    rows = []
    for item in items:
        cells: list[Any] = [(item.get("metadata") or {}).get("name")]
        for column in columns:
            value = _json_path(item, column["jsonPath"])
            cells.append(", ".join(map(str, value)) if isinstance(value, list) else value)
        metadata = {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": item.get("metadata") or {},
        }
        rows.append({"cells": cells, "object": metadata})
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": definitions,
        "rows": rows,
    }


# ----------------------------------------------------------------------------- server


@dataclass
class KMockServer:
    """A running emulator: its URL, and thread-safe access to what it stores."""

    url: str
    emulator: RealisticKubernetesEmulator
    loop: asyncio.AbstractEventLoop

    @property
    def pod_logs(self) -> dict[tuple[str, str], str]:
        """The text served as ``GET .../pods/<name>/log``, by (namespace, pod name)."""
        return self.emulator.pod_logs

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the server's loop (so it never races a request) and return its result."""

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(START_TIMEOUT_SECONDS)

    def object(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The stored object (``resource`` like ``"batch/v1/jobs"``), None if absent or deleted."""

        def read() -> dict[str, Any] | None:
            key = (kmock.resource(resource), namespace, name)  # `in` does not parse strings
            if key not in self.emulator.objects or self.emulator.objects[key].deleted:
                return None
            return dict(self.emulator.objects[key].raw)

        return self.call(read)

    def requests(self) -> list[kmock.Request]:
        """Every request served so far, in order."""
        return self.call(lambda: list(self.emulator))

    def drain_requests(self) -> list[kmock.Request]:
        """The requests served since the last drain, which the server then forgets.

        kmock matches every new request against its whole request history, so serving one
        costs time in proportion to the requests served before: a long benchmark drains the
        history now and then to keep the emulator's cost per request flat, as a real API
        server's is.
        """

        def drain() -> list[kmock.Request]:
            history = self.emulator._requests  # kmock keeps it for assertions only
            drained = list(history)
            history.clear()
            return drained

        return self.call(drain)


def bundled_resources() -> bytes:
    """kmock's bundled resource definitions (what ``resources.load_bundled()`` reads).

    ``load_bundled()`` itself reads them with ``importlib.resources.read_binary``, deprecated
    since Python 3.11: its DeprecationWarning is an error under this project's pytest settings.
    """
    packed = importlib.resources.files("kmock._internal").joinpath("resources.json.gz")
    return gzip.decompress(packed.read_bytes())


async def _serve(
    started: concurrent.futures.Future[tuple[KMockServer, asyncio.Event]],
) -> list[Exception]:
    emulator = RealisticKubernetesEmulator()
    emulator.resources.load_data(bundled_resources())
    async with emulator, kmock.Server(emulator) as server:
        stop = asyncio.Event()
        url = str(server.url).rstrip("/")
        started.set_result((KMockServer(url, emulator, asyncio.get_running_loop()), stop))
        await stop.wait()
        return list(emulator.errors)


@contextlib.contextmanager
def running_kmock(*, fail_on_server_errors: bool = True) -> Iterator[KMockServer]:
    """Run a :class:`RealisticKubernetesEmulator` on loopback in a thread; yield its handle."""
    loop = asyncio.new_event_loop()
    started: concurrent.futures.Future[tuple[KMockServer, asyncio.Event]] = (
        concurrent.futures.Future()
    )
    finished: concurrent.futures.Future[list[Exception]] = concurrent.futures.Future()

    def run() -> None:
        try:
            finished.set_result(loop.run_until_complete(_serve(started)))
        except BaseException as exc:
            if not started.done():
                started.set_exception(exc)
            finished.set_exception(exc)

    thread = threading.Thread(target=run, name="kmock", daemon=True)
    thread.start()
    try:
        server, stop = started.result(START_TIMEOUT_SECONDS)
    except BaseException:
        thread.join(START_TIMEOUT_SECONDS)
        loop.close()
        raise
    try:
        yield server
    finally:  # also when the body failed; then its error is the one that propagates
        loop.call_soon_threadsafe(stop.set)
        thread.join(START_TIMEOUT_SECONDS)
        loop.close()
    errors = finished.result(0)
    unexpected = [error for error in errors if not isinstance(error, kmock.KubernetesError)]
    if fail_on_server_errors and unexpected:
        raise RuntimeError(f"the Kubernetes emulator failed to serve requests: {unexpected!r}")


@contextlib.contextmanager
def kmock_server() -> Iterator[str]:
    """Run the emulator on loopback in a thread; yield its base URL (``http://127.0.0.1:N``)."""
    with running_kmock() as server:
        yield server.url


def api_client(url: str) -> Any:
    """A ``kubernetes.client.ApiClient`` for the emulator at ``url`` (no auth, no TLS)."""
    from kubernetes import client

    configuration = client.Configuration(host=url)
    return client.ApiClient(configuration)
