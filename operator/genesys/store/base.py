"""Store implementations: a local directory and S3 (boto3, any S3-compatible endpoint).

URIs: ``/path`` or ``file:///path`` (local), ``s3://bucket/prefix`` (S3). For S3 the endpoint
comes from ``endpoint_url=`` or the ``AWS_ENDPOINT_URL`` / ``GENESYS_S3_ENDPOINT`` variables, and
credentials from the usual AWS chain (never from a file in the repository); ``AWS_*`` credential
variables are read each time a store is opened.

The contract every store keeps (``tests/store/test_conformance.py`` checks it against a local
directory, moto and s3rver, each directly and through ``child``):

- Keys are relative and slash-separated. ``_clean_key`` normalises them the same way in every
  store: backslashes become slashes, empty and ``.`` segments are dropped (so a leading slash is
  ignored), ``..`` is refused with ``ValueError``, and so is any segment that starts with ``.``:
  such names are reserved (the local store's temporary files, the S3 store's probe object) and
  neither store lists them. An object key may not be empty, and a key may not be both an object
  and a folder (a directory cannot be a file).
- ``list(prefix)`` and ``list_versions(prefix)`` have folder semantics: the prefix ends at a
  ``/``, so ``list("runs/demo")`` and ``list("runs/demo/")`` return the keys under ``runs/demo/``
  and never ``runs/demo-2/...``; listing an object's own key returns nothing; ``list("")``
  returns every key of the store. Keys come back sorted and relative to the store's root (for a
  child, relative to the child); both methods return the same keys.
- A ``list_versions`` tag changes whenever the object's content does (the S3 ETag; locally the
  inode, mtime and size, and every write makes a new inode), and stays the same otherwise.
- ``put_bytes`` / ``put_file`` are atomic: local writes go to a temporary file in the same
  directory and are renamed into place; S3 PUTs (single or multipart) are atomic by design.
- ``create_bytes`` / ``create_text`` write only when the key does not exist, atomically and
  exclusively across threads and processes: True when this call created the object, False when
  it existed already (its content untouched). Locally a complete temporary file is hard-linked
  into place (``link`` fails when the target exists), so readers never see a torn object; a
  filesystem without hard links raises ``ConditionalWriteUnsupportedError``. On S3
  the PUT carries ``If-None-Match: *``: 412 PreconditionFailed means False, and 409
  ConditionalRequestConflict (another conditional write to the key in flight) is retried a few
  times, then answered False when the key exists and ``StoreError`` when it does not. S3
  implementations that ignore ``If-None-Match`` (s3rver 3.7.1 does) are detected once per
  (endpoint, bucket) by a probe, after which ``create_bytes`` raises
  ``ConditionalWriteUnsupportedError`` rather than silently overwrite. (A conditional PUT that
  succeeded but whose reply was lost, then retried by botocore, answers False for an object this
  call wrote: the content is this call's, but the caller cannot tell.)
- ``delete_prefix(prefix)`` removes every object under the folder (never a sibling such as
  ``runs/demo-2``), reserved ones included, and returns how many keys (as ``list`` shows them)
  it removed; S3 deletes in batches of 1000 (DeleteObjects). An empty prefix is refused with
  ``ValueError``, because deleting a whole store must be explicit. It is not atomic: an object
  written under the folder meanwhile may survive.
- Missing keys raise ``KeyError`` from ``get_bytes`` / ``get_file``, never return empty data;
  ``delete`` of a missing key is no error.
- ``child(prefix).uri`` opened with ``open_store`` is the same view as the child.
- Transient S3 errors are retried with exponential backoff (botocore's standard mode).
"""

from __future__ import annotations

import abc
import contextlib
import errno
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Literal
from urllib.parse import urlparse

#: Objects per DeleteObjects request (the S3 API's maximum).
DELETE_BATCH = 1000
#: Extra attempts of a conditional PUT answered 409 ConditionalRequestConflict.
CONFLICT_RETRIES = 4
#: Folder (under the store's prefix) of the object that probes for If-None-Match support.
PROBE_FOLDER = ".genesys-probe"


class StoreError(RuntimeError):
    """The store could not be reached or refused an operation."""


class ConditionalWriteUnsupportedError(StoreError):
    """The store cannot create an object only if it is missing (``create_bytes``)."""


def _clean_key(key: str) -> str:
    """The normal form of a key or folder ('' for the root); ValueError for a forbidden one."""
    parts = [p for p in key.replace("\\", "/").split("/") if p not in ("", ".")]
    if any(part == ".." for part in parts):
        raise ValueError(f"store keys may not contain '..': {key!r}")
    if any(part.startswith(".") for part in parts):
        raise ValueError(
            f"store key segments may not start with '.' (reserved for the store's own "
            f"temporary and probe objects): {key!r}"
        )
    return "/".join(parts)


def _object_key(key: str) -> str:
    """A cleaned key that names an object (not the root)."""
    cleaned = _clean_key(key)
    if not cleaned:
        raise ValueError(f"a store object needs a non-empty key: {key!r}")
    return cleaned


def _join(prefix: str, key: str) -> str:
    return f"{prefix}/{key}" if prefix and key else prefix or key


def _folder(prefix: str, folder: str) -> str:
    """The raw listing prefix of ``folder`` under ``prefix``: '' or ending with '/'."""
    joined = _join(prefix, folder)
    return f"{joined}/" if joined else ""


def _is_visible(key: str) -> bool:
    """True for a key a store lists: already in normal form, no reserved segment."""
    try:
        return bool(key) and _clean_key(key) == key
    except ValueError:
        return False


class Store(abc.ABC):
    """A key/value store of artifacts."""

    uri: str

    @abc.abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None:
        """Write an object atomically."""

    @abc.abstractmethod
    def create_bytes(self, key: str, data: bytes) -> bool:
        """Write an object only if the key is missing; True when this call created it."""

    @abc.abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """Read an object; KeyError when missing."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool:
        """True when the object exists."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys under the folder ``prefix``, sorted ('' lists the whole store)."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove an object (no error when missing)."""

    @abc.abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Remove every object under the folder ``prefix``; how many. ValueError for ''."""

    def list_versions(self, prefix: str = "") -> dict[str, str]:
        """Keys under a folder with a tag that changes whenever the object does ('' unknown)."""
        return dict.fromkeys(self.list(prefix), "")

    def put_file(self, key: str, path: Path) -> None:
        """Upload a local file (large files stream; S3 uses multipart)."""
        self.put_bytes(key, Path(path).read_bytes())

    def get_file(self, key: str, path: Path) -> None:
        """Download an object to a local file; KeyError when missing."""
        Path(path).write_bytes(self.get_bytes(key))

    def put_text(self, key: str, text: str) -> None:
        """Write UTF-8 text atomically."""
        self.put_bytes(key, text.encode("utf-8"))

    def create_text(self, key: str, text: str) -> bool:
        """Write UTF-8 text only if the key is missing; True when this call created it."""
        return self.create_bytes(key, text.encode("utf-8"))

    def get_text(self, key: str) -> str:
        """Read UTF-8 text."""
        return self.get_bytes(key).decode("utf-8")

    def child(self, prefix: str) -> Store:
        """A view of this store under a folder; its keys are relative to that folder."""
        return PrefixedStore(self, _clean_key(prefix))


def _refuse_root(prefix: str) -> str:
    folder = _clean_key(prefix)
    if not folder:
        raise ValueError(
            f"delete_prefix needs a folder, not the whole store ({prefix!r}); "
            "delete the store's objects explicitly"
        )
    return folder


class PrefixedStore(Store):
    """A store seen under a key prefix (a folder of ``inner``)."""

    def __init__(self, inner: Store, prefix: str) -> None:
        self.inner, self.prefix = inner, _clean_key(prefix)
        self.uri = f"{inner.uri.rstrip('/')}/{self.prefix}" if self.prefix else inner.uri

    def _key(self, key: str) -> str:
        return _join(self.prefix, _object_key(key))

    def _strip(self, key: str) -> str:
        return key[len(self.prefix) + 1 :] if self.prefix else key

    def put_bytes(self, key: str, data: bytes) -> None:
        self.inner.put_bytes(self._key(key), data)

    def create_bytes(self, key: str, data: bytes) -> bool:
        return self.inner.create_bytes(self._key(key), data)

    def get_bytes(self, key: str) -> bytes:
        return self.inner.get_bytes(self._key(key))

    def exists(self, key: str) -> bool:
        return self.inner.exists(self._key(key))

    def list(self, prefix: str = "") -> Iterator[str]:
        for key in self.inner.list(_join(self.prefix, _clean_key(prefix))):
            yield self._strip(key)

    def list_versions(self, prefix: str = "") -> dict[str, str]:
        inner = self.inner.list_versions(_join(self.prefix, _clean_key(prefix)))
        return {self._strip(key): tag for key, tag in inner.items()}

    def delete(self, key: str) -> None:
        self.inner.delete(self._key(key))

    def delete_prefix(self, prefix: str) -> int:
        return self.inner.delete_prefix(_join(self.prefix, _refuse_root(prefix)))

    def put_file(self, key: str, path: Path) -> None:
        self.inner.put_file(self._key(key), path)

    def get_file(self, key: str, path: Path) -> None:
        self.inner.get_file(self._key(key), path)


class LocalStore(Store):
    """A directory with the same key layout as the S3 store."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / _object_key(key)

    def _write_temporary(self, path: Path, write: Callable[[BinaryIO], None]) -> str:
        """A complete, fsynced temporary file (a reserved name) in ``path``'s folder."""
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(handle, "wb") as out:
                write(out)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, 0o644)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return temporary

    def _atomic_write(self, key: str, write: Callable[[BinaryIO], None]) -> None:
        """Write through a temporary file in the target's folder, then rename into place."""
        path = self._path(key)
        temporary = self._write_temporary(path, write)
        try:
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def put_bytes(self, key: str, data: bytes) -> None:
        def write(out: BinaryIO) -> None:
            out.write(data)

        self._atomic_write(key, write)

    def create_bytes(self, key: str, data: bytes) -> bool:
        path = self._path(key)

        def write(out: BinaryIO) -> None:
            out.write(data)

        temporary = self._write_temporary(path, write)
        try:
            os.link(temporary, path)  # atomic and exclusive: EEXIST when the key exists
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise ConditionalWriteUnsupportedError(
                    f"the filesystem of {self.root} does not support hard links, which "
                    f"create_bytes needs to create {key!r} exclusively"
                ) from exc
            raise
        finally:
            Path(temporary).unlink(missing_ok=True)
        return True

    def put_file(self, key: str, path: Path) -> None:
        def copy(out: BinaryIO) -> None:
            with Path(path).open("rb") as source:
                shutil.copyfileobj(source, out, 1 << 22)

        self._atomic_write(key, copy)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise KeyError(key) from None

    def get_file(self, key: str, path: Path) -> None:
        try:
            source = self._path(key).open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise KeyError(key) from None
        with source, Path(path).open("wb") as out:
            shutil.copyfileobj(source, out, 1 << 22)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> Iterator[str]:
        yield from sorted(self._walk(_clean_key(prefix)))

    def _walk(self, folder: str) -> Iterator[str]:
        """Visible keys under a folder ('' the root), unsorted; nothing for a file or a gap."""
        base = self.root / folder if folder else self.root
        for directory, subdirectories, files in os.walk(base):
            subdirectories[:] = [name for name in subdirectories if not name.startswith(".")]
            relative = Path(directory).relative_to(self.root).as_posix()
            for name in files:
                key = name if relative == "." else f"{relative}/{name}"
                if not name.startswith(".") and os.path.isfile(os.path.join(directory, name)):
                    yield key

    def list_versions(self, prefix: str = "") -> dict[str, str]:
        versions = {}
        for key in self.list(prefix):
            with contextlib.suppress(OSError):  # removed meanwhile: left out
                stat = (self.root / key).stat()
                versions[key] = f"{stat.st_ino}-{stat.st_mtime_ns}-{stat.st_size}"
        return versions

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            self._path(key).unlink()

    def delete_prefix(self, prefix: str) -> int:
        base = self.root / _refuse_root(prefix)
        removed = 0
        for directory, _subdirectories, files in os.walk(base, topdown=False):
            relative = Path(directory).relative_to(self.root).as_posix()
            for name in files:  # temporary files go too, but only keys are counted
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(directory, name))
                    if _is_visible(f"{relative}/{name}"):
                        removed += 1
            with contextlib.suppress(OSError):  # a writer may be adding to it meanwhile
                os.rmdir(directory)
        return removed


def _error_code(exc: Any) -> tuple[str, int]:
    """(S3 error code, HTTP status) of a botocore ClientError."""
    response = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return code, status


def _is_missing(exc: Any) -> bool:
    return _error_code(exc)[0] in ("404", "NoSuchKey", "NotFound")  # not NoSuchBucket


ConditionalOutcome = Literal["created", "exists", "conflict", "unsupported", "error"]


def conditional_put_outcome(error: tuple[str, int] | None) -> ConditionalOutcome:
    """What a PUT with ``If-None-Match: *`` answered, from its (error code, HTTP status).

    None (no error) is "created"; 412 PreconditionFailed "exists"; 409
    ConditionalRequestConflict "conflict" (retry); 501 NotImplemented "unsupported".
    """
    if error is None:
        return "created"
    code, status = error
    if code == "PreconditionFailed" or status == 412:
        return "exists"
    if code == "ConditionalRequestConflict" or status == 409:
        return "conflict"
    if code == "NotImplemented" or status == 501:
        return "unsupported"
    return "error"


def settle_conditional_put(
    put: Callable[[], ConditionalOutcome], exists: Callable[[], bool], what: str
) -> bool:
    """A conditional create to its end: True when ``put`` created the key, False when it exists.

    A ``conflict`` (another conditional write of the key in flight) is retried with backoff,
    then settled by whether the key exists; any other end is a :class:`StoreError`.
    """
    for attempt in range(CONFLICT_RETRIES + 1):
        outcome = put()
        if outcome != "conflict":
            break
        time.sleep(0.05 * 2**attempt)
    if outcome == "created":
        return True
    if outcome == "exists" or (outcome == "conflict" and exists()):
        return False
    raise StoreError(f"conditional PUT of {what} ended {outcome!r} and the key does not exist")


def _environment_credentials() -> dict[str, str]:
    """Credentials from ``AWS_*`` variables now, where set (the first link of the AWS chain).

    boto3's default session keeps the first credentials it resolves for the life of the
    process; passing the environment's explicitly makes a store see the environment of the
    moment it is opened. Without the variables, the rest of the chain applies as usual.
    """
    names = {
        "aws_access_key_id": "AWS_ACCESS_KEY_ID",
        "aws_secret_access_key": "AWS_SECRET_ACCESS_KEY",
        "aws_session_token": "AWS_SESSION_TOKEN",
    }
    found = {arg: os.environ[name] for arg, name in names.items() if os.environ.get(name)}
    return found if "aws_access_key_id" in found and "aws_secret_access_key" in found else {}


#: (endpoint, bucket) -> whether that S3 implementation honours If-None-Match.
_CONDITIONAL_WRITES: dict[tuple[str, str], bool] = {}
_PROBE_LOCK = threading.Lock()


class S3Store(Store):
    """An S3 bucket (or S3-compatible endpoint) under a key prefix."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        client: Any = None,
    ) -> None:
        import boto3  # deferred: the local store needs no boto3 import
        from botocore.config import Config

        self.bucket, self.prefix = bucket, _clean_key(prefix)
        endpoint = (
            endpoint_url
            or os.environ.get("GENESYS_S3_ENDPOINT")
            or os.environ.get("AWS_ENDPOINT_URL")
        )
        self.uri = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.client = client or boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=region or os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
            **_environment_credentials(),
            config=Config(
                retries={"max_attempts": 8, "mode": "standard"},
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    @property
    def endpoint(self) -> str:
        """The endpoint URL the client talks to."""
        return str(self.client.meta.endpoint_url)

    def _key(self, key: str) -> str:
        return _join(self.prefix, _object_key(key))

    def child(self, prefix: str) -> Store:
        return S3Store(self.bucket, _join(self.prefix, _clean_key(prefix)), client=self.client)

    def put_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def _put_if_absent(self, key: str, data: bytes) -> ConditionalOutcome:
        """One PUT with ``If-None-Match: *`` of a full key; its outcome."""
        from botocore.exceptions import ClientError

        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, IfNoneMatch="*")
        except ClientError as exc:
            outcome = conditional_put_outcome(_error_code(exc))
            if outcome == "error":
                raise
            return outcome
        return "created"

    def conditional_writes_honoured(self) -> bool:
        """Whether this endpoint refuses a second ``If-None-Match: *`` PUT (probed once).

        The probe writes ``<prefix>/.genesys-probe/<uuid>`` twice, conditionally, and deletes
        it; the answer is cached per (endpoint, bucket) for the life of the process.
        """
        cache_key = (self.endpoint, self.bucket)
        with _PROBE_LOCK:
            if cache_key not in _CONDITIONAL_WRITES:
                probe = _join(self.prefix, f"{PROBE_FOLDER}/{uuid.uuid4().hex}")
                try:
                    first = self._put_if_absent(probe, b"probe")
                    second = self._put_if_absent(probe, b"probe") if first == "created" else first
                finally:
                    self.client.delete_object(Bucket=self.bucket, Key=probe)
                _CONDITIONAL_WRITES[cache_key] = first == "created" and second == "exists"
            return _CONDITIONAL_WRITES[cache_key]

    def create_bytes(self, key: str, data: bytes) -> bool:
        full = self._key(key)
        if not self.conditional_writes_honoured():
            raise ConditionalWriteUnsupportedError(
                f"the S3 endpoint {self.endpoint} (bucket {self.bucket!r}) does not honour "
                "If-None-Match: a second conditional PUT of one key overwrote the first, so "
                "concurrent writers could duplicate work; use an S3 implementation that "
                "honours it (AWS S3, MinIO and Ceph do)"
            )
        return settle_conditional_put(
            lambda: self._put_if_absent(full, data),
            lambda: self.exists(key),
            f"{full!r} to {self.endpoint} (bucket {self.bucket!r})",
        )

    def put_file(self, key: str, path: Path) -> None:
        self.client.upload_file(str(path), self.bucket, self._key(key))  # multipart when large

    def get_file(self, key: str, path: Path) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.download_file(self.bucket, self._key(key), str(path))
        except ClientError as exc:
            if _is_missing(exc):
                raise KeyError(key) from None
            raise

    def get_bytes(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _is_missing(exc):
                raise KeyError(key) from None
            raise
        body: bytes = response["Body"].read()
        return body

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _is_missing(exc):
                return False
            raise
        return True

    def _objects(self, folder: str) -> Iterator[tuple[str, str]]:
        """(full key, ETag) of every object under a folder of this store, hidden ones too."""
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=_folder(self.prefix, folder)):
            for item in page.get("Contents", []):
                yield str(item["Key"]), str(item.get("ETag", "")).strip('"')

    def _listing(self, prefix: str) -> dict[str, str]:
        cut = len(self.prefix) + 1 if self.prefix else 0
        listing = {full[cut:]: tag for full, tag in self._objects(_clean_key(prefix))}
        return {key: listing[key] for key in sorted(listing) if _is_visible(key)}

    def list(self, prefix: str = "") -> Iterator[str]:
        yield from self._listing(prefix)

    def list_versions(self, prefix: str = "") -> dict[str, str]:
        return self._listing(prefix)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def delete_prefix(self, prefix: str) -> int:
        cut = len(self.prefix) + 1 if self.prefix else 0
        keys = sorted(full for full, _tag in self._objects(_refuse_root(prefix)))
        for start in range(0, len(keys), DELETE_BATCH):
            batch = keys[start : start + DELETE_BATCH]
            response = self.client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
            )
            if errors := response.get("Errors"):
                first = ", ".join(f"{e.get('Key')}: {e.get('Code')}" for e in errors[:3])
                raise StoreError(
                    f"{self.endpoint} refused to delete {len(errors)} of {len(batch)} objects "
                    f"under {prefix!r} (bucket {self.bucket!r}): {first}"
                )
        return sum(_is_visible(full[cut:]) for full in keys)


def open_store(uri: str | Path, *, endpoint_url: str | None = None) -> Store:
    """A store from a URI: a path, ``file://...`` or ``s3://bucket/prefix``.

    Where ``GENESYS_STORE_GRANT`` is set (a training job), an ``s3://`` URI opens as a
    :class:`~genesys.store.grant.GrantStore` view that reaches only what the grant covers, with
    no credential; ``endpoint_url`` is then unused (the grant's URLs name their endpoint).
    """
    text = str(uri)
    parsed = urlparse(text)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ValueError(f"S3 URI without a bucket: {text!r}")
        from genesys.store.grant import GrantStore, environment_grant  # grant imports this module

        grant = environment_grant()
        if grant is not None:
            return GrantStore(grant, text)
        return S3Store(parsed.netloc, parsed.path.lstrip("/"), endpoint_url=endpoint_url)
    if parsed.scheme == "file":
        return LocalStore(parsed.path)
    if parsed.scheme and len(parsed.scheme) > 1:
        raise ValueError(f"unsupported store URI {text!r}; expected a path, file:// or s3://")
    return LocalStore(text)


__all__ = [
    "ConditionalWriteUnsupportedError",
    "LocalStore",
    "PrefixedStore",
    "S3Store",
    "Store",
    "StoreError",
    "conditional_put_outcome",
    "open_store",
    "settle_conditional_put",
]
