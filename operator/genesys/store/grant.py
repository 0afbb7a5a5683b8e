"""Store grants: presigned S3 URLs that let a training job reach its own objects, and no others.

A training job runs untrusted design code in the trainer's process, so it holds no store
credential. The operator (or the local driver) issues it a :class:`StoreGrant` instead when it
submits the job (:func:`training_grant`, built on :func:`issue_grant`): for every object the job
may touch, its ``s3://bucket/key`` URI mapped to presigned URLs, signed with the issuer's own
credentials through its :class:`~genesys.store.base.S3Store` client:

- ``get`` and ``head`` for the objects it reads: the design's ``design.json``, the run config,
  and every object of the data prefix when the data is in S3 (listed when the grant is issued);
- ``get``, ``head`` and ``put`` for the fixed keys the trainer reads and writes under its output
  prefix, the verification's ``designs/<id>/verifications/<rung>`` (:data:`TRAINER_KEYS`); that
  prefix is the grant's ``writable``.

The grant travels as JSON in the job's environment (:data:`GRANT_VARIABLE`). Where it is set,
:func:`~genesys.store.base.open_store` opens every ``s3://`` URI as a :class:`GrantStore`: a
store view that resolves keys through the grant with plain HTTP (``urllib``; no boto3, no
credential), so the trainer's ``--design``, ``--config``, ``--data`` and ``--out`` stay the same
URIs. It keeps the store contract for what the grant covers (atomic PUTs, ``create_*`` with
``If-None-Match: *``, ``KeyError`` for a missing key, folder listings), and refuses the rest.

What must stay true:

- A grant holds URLs, an expiry and URIs, never a secret: a presigned URL names the signer's
  access key id (and, signed with temporary credentials, carries their session token), which
  sign nothing without the secret key that stays with the issuer.
- ``put`` URLs exist only for keys under ``writable``; :class:`StoreGrant` refuses any other.
- A :class:`GrantStore` sends no request for a key outside the grant, and ``delete``,
  ``delete_prefix`` and ``list_versions`` always raise ``StoreError`` naming the key; a refused
  URL (403: expired, or a signature the server rejects) is a ``StoreError`` saying so.
- URLs are signed with SigV4 unless the issuer's client is explicitly configured otherwise
  (botocore would otherwise presign S3 with SigV2 in some regions); a grant lives at most
  :data:`MAX_LIFETIME_SECONDS` (SigV4's limit), and no longer than the credentials that signed
  it.
"""

from __future__ import annotations

import functools
import http.client
import os
import random
import re
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import pydantic
from pydantic import BaseModel, ConfigDict, model_validator

from genesys.store.base import (
    ConditionalOutcome,
    ConditionalWriteUnsupportedError,
    S3Store,
    Store,
    StoreError,
    _clean_key,
    _folder,
    _is_visible,
    _join,
    _object_key,
    conditional_put_outcome,
    settle_conditional_put,
)

#: The environment variable that carries a grant (JSON) into a training job.
GRANT_VARIABLE = "GENESYS_STORE_GRANT"
#: Keys under the output prefix the trainer reads and writes (``genesys_trainer.train``), and
#: ``eval.json``, which ``genesys eval --run`` writes beside them.
TRAINER_KEYS = (
    "checkpoint.pt",
    "config.json",
    "eval.json",
    "log.jsonl",
    "model.pt",
    "preemptions.jsonl",
    "result.json",
    "spans.json",
)
#: The longest a presigned URL may live (SigV4: seven days).
MAX_LIFETIME_SECONDS = 7 * 24 * 3600
#: Added to a job's deadline: the job may start a little after the grant is issued.
LIFETIME_MARGIN_SECONDS = 3600
#: The largest grant one environment variable can carry (Linux: 128 KiB per ``NAME=value``).
MAX_GRANT_BYTES = 128 * 1024 - len(GRANT_VARIABLE) - 2
#: Seconds a request may wait on the network (connect, or between bytes), as botocore's default.
TIMEOUT_SECONDS = 60.0
#: Attempts of a request that fails transiently (as the S3Store's botocore configuration).
ATTEMPTS = 8
#: HTTP statuses worth retrying: throttling and server errors.
RETRYABLE = frozenset({429, 500, 502, 503, 504})
#: The content type every PUT URL is signed for (and every PUT sends).
CONTENT_TYPE = "application/octet-stream"
GRANT_FORMAT: Literal["genesys.store-grant/v1"] = "genesys.store-grant/v1"


# ------------------------------------------------------------------------------ the grant


class GrantedObject(BaseModel):
    """The presigned URLs of one object: read (``get``, ``head``), and ``put`` where writable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    get: str
    head: str
    put: str | None = None


class StoreGrant(BaseModel):
    """What a training job may reach in the store, as presigned URLs, until ``expires``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["genesys.store-grant/v1"] = GRANT_FORMAT
    expires: datetime  # UTC; the URLs are refused after it
    writable: str | None = None  # the s3:// prefix whose keys have ``put`` URLs
    conditional_writes: bool = True  # the endpoint honours If-None-Match (probed on issue)
    objects: dict[str, GrantedObject]  # s3://bucket/key -> its URLs

    @model_validator(mode="after")
    def _puts_only_under_writable(self) -> StoreGrant:
        folder = f"{self.writable.rstrip('/')}/" if self.writable else None
        for uri, urls in self.objects.items():
            if not uri.startswith("s3://"):
                raise ValueError(f"a granted object must be an s3:// URI: {uri!r}")
            if urls.put is not None and (folder is None or not uri.startswith(folder)):
                raise ValueError(
                    f"{uri} has a put URL but is not under the writable prefix {self.writable!r}"
                )
        return self

    def to_json(self) -> str:
        """The compact JSON the job's environment carries."""
        return self.model_dump_json()


def split_uri(uri: str) -> tuple[str, str]:
    """(bucket, cleaned key or prefix) of an ``s3://`` URI; ValueError for anything else."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"not an s3://bucket/... URI: {uri!r}")
    return parsed.netloc, _clean_key(parsed.path)


def s3_uri(bucket: str, key: str) -> str:
    """The ``s3://`` URI of a key (or prefix; '' the bucket) of a bucket."""
    return f"s3://{bucket}/{key}".rstrip("/")


def is_s3(uri: str) -> bool:
    """True for an ``s3://`` URI."""
    return uri.startswith("s3://")


@functools.lru_cache(maxsize=8)
def load_grant(text: str) -> StoreGrant:
    """The grant in a JSON text (the job's :data:`GRANT_VARIABLE`); StoreError when invalid."""
    try:
        return StoreGrant.model_validate_json(text)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '<grant>'}: {error['msg']}"
            for error in exc.errors(include_url=False)[:3]
        )
        raise StoreError(
            f"{GRANT_VARIABLE} does not hold a valid store grant: {problems}"
        ) from None


def environment_grant(environ: Mapping[str, str] | None = None) -> StoreGrant | None:
    """The grant in :data:`GRANT_VARIABLE`, when it is set (and not empty)."""
    text = (os.environ if environ is None else environ).get(GRANT_VARIABLE, "")
    return load_grant(text) if text.strip() else None


def grant_env(grant: StoreGrant) -> dict[str, str]:
    """The job environment that carries ``grant``; StoreError when it is too large for one."""
    text = grant.to_json()
    if len(text.encode("utf-8")) > MAX_GRANT_BYTES:
        raise StoreError(
            f"the store grant of {len(grant.objects)} objects takes {len(text):,} bytes, more "
            f"than one environment variable holds ({MAX_GRANT_BYTES:,}); prepare the data "
            "into fewer, larger shards"
        )
    return {GRANT_VARIABLE: text}


# ------------------------------------------------------------------------------- issuing


def grant_lifetime(deadline_seconds: float) -> int:
    """Seconds a job's grant lives: its deadline plus a margin, at most seven days."""
    return clamp_lifetime(int(deadline_seconds) + LIFETIME_MARGIN_SECONDS)


def clamp_lifetime(seconds: int) -> int:
    """``seconds`` within [1, :data:`MAX_LIFETIME_SECONDS`]."""
    return max(1, min(int(seconds), MAX_LIFETIME_SECONDS))


def _keep_sigv4_presign(signature_version: str, **_: Any) -> str | None:
    """``choose-signer`` handler: presign with SigV4 when the client signs with SigV4.

    botocore presigns S3 requests with SigV2 unless a signature version was configured; this
    runs first and keeps the client's SigV4 for presigned URLs. Other signers pass through.
    """
    if signature_version.endswith("-query") and "v4" in signature_version:
        return signature_version
    return None


def _sign(client: Any, method: str, bucket: str, key: str, expires_in: int) -> str:
    params: dict[str, str] = {"Bucket": bucket, "Key": key}
    if method == "put_object":
        params["ContentType"] = CONTENT_TYPE
    url: str = client.generate_presigned_url(method, Params=params, ExpiresIn=expires_in)
    return url


def _object_urls(client: Any, uri: str, expires_in: int, *, writable: bool) -> GrantedObject:
    bucket, key = split_uri(uri)
    if not key:
        raise ValueError(f"a granted object needs a key: {uri!r}")
    return GrantedObject(
        get=_sign(client, "get_object", bucket, key, expires_in),
        head=_sign(client, "head_object", bucket, key, expires_in),
        put=_sign(client, "put_object", bucket, key, expires_in) if writable else None,
    )


def listed_objects(signer: S3Store, folder: str) -> list[str]:
    """The URIs of every object under an ``s3://`` folder, listed with the issuer's client."""
    bucket, prefix = split_uri(folder)
    listing = S3Store(bucket, prefix, client=signer.client)
    return [s3_uri(bucket, _join(prefix, key)) for key in listing.list()]


def issue_grant(
    signer: S3Store,
    *,
    objects: Iterable[str] = (),
    folders: Iterable[str] = (),
    writable: str | None = None,
    keys: Iterable[str] = TRAINER_KEYS,
    expires_in: int,
) -> StoreGrant:
    """A grant signed by ``signer``'s client (its credentials stay with the issuer).

    ``objects`` (``s3://`` URIs) and every object under ``folders`` (listed now) get read URLs;
    ``keys`` under the ``writable`` prefix get read and write URLs. The URLs live
    ``expires_in`` seconds, at most :data:`MAX_LIFETIME_SECONDS`, and no longer than the
    credentials that sign them.
    """
    client = signer.client
    client.meta.events.register_first(
        "choose-signer.s3", _keep_sigv4_presign, unique_id="genesys-grant-sigv4"
    )
    lifetime = clamp_lifetime(expires_in)
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=lifetime)
    granted: dict[str, GrantedObject] = {}
    reads = [*objects, *(uri for folder in folders for uri in listed_objects(signer, folder))]
    for uri in reads:
        normal = s3_uri(*split_uri(uri))  # the form a GrantStore looks keys up by
        granted[normal] = _object_urls(client, normal, lifetime, writable=False)
    conditional = True
    if writable is not None:
        bucket, prefix = split_uri(writable)
        writable = s3_uri(bucket, prefix)
        for key in keys:
            uri = s3_uri(bucket, _join(prefix, _object_key(key)))
            granted[uri] = _object_urls(client, uri, lifetime, writable=True)
        output = S3Store(bucket, prefix, client=client)
        conditional = output.conditional_writes_honoured()
    return StoreGrant(
        expires=expires, writable=writable, conditional_writes=conditional, objects=granted
    )


def training_grant(
    signer: S3Store,
    *,
    design: str,
    config: str,
    data: str,
    out: str,
    deadline_seconds: float,
) -> StoreGrant | None:
    """The grant of one training job: its inputs to read, its output prefix to write.

    Only the ``s3://`` ones count (local paths are the sandbox's binds); None when there are
    none. It lives for the job's deadline plus :data:`LIFETIME_MARGIN_SECONDS`.
    """
    objects = [uri for uri in (design, config) if is_s3(uri)]
    folders = [data] if is_s3(data) else []
    writable = out if is_s3(out) else None
    if not (objects or folders or writable):
        return None
    return issue_grant(
        signer,
        objects=objects,
        folders=folders,
        writable=writable,
        expires_in=grant_lifetime(deadline_seconds),
    )


# --------------------------------------------------------------------------- the store view


def _error_detail(body: bytes) -> tuple[str, str]:
    """(Code, Message) of an S3 XML error body ('' where absent)."""
    text = body[:4096].decode("utf-8", errors="replace")
    code = re.search(r"<Code>([^<]*)</Code>", text)
    message = re.search(r"<Message>([^<]*)</Message>", text)
    return (code.group(1) if code else "", message.group(1) if message else "")


class GrantStore(Store):
    """A view of ``s3://bucket/prefix`` whose keys resolve through a :class:`StoreGrant`.

    ``passthrough`` statuses of a request are returned to the method that sent it (404, 412,
    409, 501 as the S3 store reads them); 403 is a refused grant; throttling, server errors
    and network failures are retried with backoff; anything else is a ``StoreError``.
    """

    def __init__(self, grant: StoreGrant, uri: str, *, timeout: float = TIMEOUT_SECONDS) -> None:
        self.grant, self.timeout = grant, timeout
        self.bucket, self.prefix = split_uri(uri)
        self.uri = s3_uri(self.bucket, self.prefix)

    # -- resolving keys

    def _uri(self, key: str) -> str:
        return s3_uri(self.bucket, _join(self.prefix, _object_key(key)))

    def _refuse(self, uri: str, what: str) -> StoreError:
        writable = self.grant.writable or "nothing"
        return StoreError(
            f"{uri}: the store grant does not cover it ({what}); this job may read only its "
            f"inputs and write only under {writable}"
        )

    def _urls(self, key: str, what: str) -> tuple[str, GrantedObject]:
        uri = self._uri(key)
        urls = self.grant.objects.get(uri)
        if urls is None:
            raise self._refuse(uri, what)
        return uri, urls

    def _put_url(self, key: str) -> tuple[str, str]:
        uri, urls = self._urls(key, "write")
        if urls.put is None:
            raise self._refuse(uri, "write")
        return uri, urls.put

    # -- HTTP

    def _send(
        self,
        method: str,
        url: str,
        uri: str,
        *,
        body: bytes | Path | None = None,
        headers: Mapping[str, str] | None = None,
        sink: Path | None = None,
        passthrough: frozenset[int] = frozenset(),
    ) -> tuple[int, bytes]:
        """(status, body) of one request, retried while it fails transiently."""
        failure = ""
        for attempt in range(ATTEMPTS):
            if attempt:
                time.sleep(random.uniform(0, min(20.0, 2.0**attempt)))
            try:
                return self._once(method, url, body=body, headers=headers or {}, sink=sink)
            except urllib.error.HTTPError as exc:
                try:
                    detail = exc.read()
                finally:
                    exc.close()
                status = exc.code
                if status in passthrough:
                    return status, detail
                code, message = _error_detail(detail)
                failure = f"{status} {code}: {message}".rstrip(": ")
                if status == 403:
                    raise StoreError(
                        f"the store grant was refused (expired?): {method} {uri} answered "
                        f"{failure}; the grant expires {self.grant.expires.isoformat()}, "
                        f"now is {datetime.now(UTC).replace(microsecond=0).isoformat()}"
                    ) from None
                if status not in RETRYABLE:
                    break
            except (OSError, http.client.HTTPException) as exc:  # refused, reset, timed out
                failure = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
        raise StoreError(f"{method} {uri} through the store grant failed: {failure}")

    def _once(
        self,
        method: str,
        url: str,
        *,
        body: bytes | Path | None,
        headers: Mapping[str, str],
        sink: Path | None,
    ) -> tuple[int, bytes]:
        request_headers = dict(headers)
        if body is not None:
            request_headers["Content-Type"] = CONTENT_TYPE
        if isinstance(body, Path):
            with body.open("rb") as source:
                request_headers["Content-Length"] = str(os.fstat(source.fileno()).st_size)
                request = urllib.request.Request(
                    url, data=source, method=method, headers=request_headers
                )
                return self._open(request, sink)
        request = urllib.request.Request(url, data=body, method=method, headers=request_headers)
        return self._open(request, sink)

    def _open(self, request: urllib.request.Request, sink: Path | None) -> tuple[int, bytes]:
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            status = int(response.status)
            if sink is None:
                return status, bytes(response.read())
            with sink.open("wb") as out:
                shutil.copyfileobj(response, out, 1 << 22)
            return status, b""

    # -- the Store interface

    def put_bytes(self, key: str, data: bytes) -> None:
        uri, url = self._put_url(key)
        self._send("PUT", url, uri, body=data)

    def put_file(self, key: str, path: Path) -> None:
        uri, url = self._put_url(key)
        self._send("PUT", url, uri, body=Path(path))

    def _put_if_absent(self, uri: str, url: str, data: bytes) -> ConditionalOutcome:
        status, detail = self._send(
            "PUT",
            url,
            uri,
            body=data,
            headers={"If-None-Match": "*"},
            passthrough=frozenset({409, 412, 501}),
        )
        if 200 <= status < 300:
            return "created"
        return conditional_put_outcome((_error_detail(detail)[0], status))

    def create_bytes(self, key: str, data: bytes) -> bool:
        uri, url = self._put_url(key)
        if not self.grant.conditional_writes:
            raise ConditionalWriteUnsupportedError(
                f"the S3 endpoint of {uri} does not honour If-None-Match (probed when the store "
                "grant was issued), so concurrent writers could duplicate work; use an S3 "
                "implementation that honours it (AWS S3, MinIO and Ceph do)"
            )
        return settle_conditional_put(
            lambda: self._put_if_absent(uri, url, data),
            lambda: self.exists(key),
            f"{uri} through the store grant",
        )

    def get_bytes(self, key: str) -> bytes:
        uri, urls = self._urls(key, "read")
        status, data = self._send("GET", urls.get, uri, passthrough=frozenset({404}))
        if status == 404:
            self._missing(uri, key, data)
        return data

    def get_file(self, key: str, path: Path) -> None:
        uri, urls = self._urls(key, "read")
        target = Path(path)
        try:
            status, data = self._send(
                "GET", urls.get, uri, sink=target, passthrough=frozenset({404})
            )
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        if status == 404:
            self._missing(uri, key, data)

    def _missing(self, uri: str, key: str, detail: bytes) -> None:
        """KeyError for a missing key, as the S3 store raises; StoreError for a missing bucket."""
        code = _error_detail(detail)[0]
        if code in ("", "404", "NoSuchKey", "NotFound"):
            raise KeyError(key)
        raise StoreError(f"GET {uri} through the store grant answered 404 {code}")

    def exists(self, key: str) -> bool:
        uri, urls = self._urls(key, "read")
        status, _ = self._send("HEAD", urls.head, uri, passthrough=frozenset({404}))
        return status != 404

    def list(self, prefix: str = "") -> Iterator[str]:
        """The granted keys under a folder that exist (writable keys are checked with HEAD).

        Read-only objects are the ones the issuer named or listed when it issued the grant.
        """
        folder = _folder(self.prefix, _clean_key(prefix))
        base = f"s3://{self.bucket}/{folder}"
        cut = len(self.prefix) + 1 if self.prefix else 0
        for uri in sorted(self.grant.objects):
            if not uri.startswith(base):
                continue
            key = uri[len(f"s3://{self.bucket}/") :][cut:]
            if not _is_visible(key):
                continue
            if self.grant.objects[uri].put is None or self.exists(key):
                yield key

    def list_versions(self, prefix: str = "") -> dict[str, str]:
        raise self._refuse(
            s3_uri(self.bucket, _join(self.prefix, _clean_key(prefix))), "list versions"
        )

    def delete(self, key: str) -> None:
        raise self._refuse(self._uri(key), "delete")

    def delete_prefix(self, prefix: str) -> int:
        raise self._refuse(
            s3_uri(self.bucket, _join(self.prefix, _clean_key(prefix))), "delete a prefix"
        )

    def child(self, prefix: str) -> Store:
        return GrantStore(
            self.grant,
            s3_uri(self.bucket, _join(self.prefix, _clean_key(prefix))),
            timeout=self.timeout,
        )


def granted_puts(grant: StoreGrant) -> list[str]:
    """The URIs a grant lets its holder write."""
    return sorted(uri for uri, urls in grant.objects.items() if urls.put is not None)


__all__ = [
    "GRANT_VARIABLE",
    "MAX_LIFETIME_SECONDS",
    "TRAINER_KEYS",
    "GrantStore",
    "GrantedObject",
    "StoreGrant",
    "clamp_lifetime",
    "environment_grant",
    "grant_env",
    "grant_lifetime",
    "granted_puts",
    "issue_grant",
    "listed_objects",
    "load_grant",
    "split_uri",
    "training_grant",
]
