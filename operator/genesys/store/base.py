"""Store implementations: a local directory and S3 (boto3, any S3-compatible endpoint).

URIs: ``/path`` or ``file:///path`` (local), ``s3://bucket/prefix`` (S3). For S3 the endpoint
comes from ``endpoint_url=`` or the ``AWS_ENDPOINT_URL`` / ``GENESYS_S3_ENDPOINT`` variables, and
credentials from the usual AWS chain (never from a file in the repository).

What must stay true:
- ``put_bytes`` / ``put_file`` are atomic: local writes go to a temporary file in the same
  directory and are renamed into place; S3 PUTs (single or multipart) are atomic by design.
- Transient S3 errors are retried with exponential backoff (botocore's standard mode).
- Missing keys raise ``KeyError`` from ``get_bytes``, never return empty data.
"""

from __future__ import annotations

import abc
import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlparse


class StoreError(RuntimeError):
    """The store could not be reached or refused an operation."""


def _clean_key(key: str) -> str:
    parts = [p for p in key.replace("\\", "/").split("/") if p not in ("", ".")]
    if any(part == ".." for part in parts):
        raise ValueError(f"store keys may not contain '..': {key!r}")
    return "/".join(parts)


class Store(abc.ABC):
    """A key/value store of artifacts."""

    uri: str

    @abc.abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None:
        """Write an object atomically."""

    @abc.abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """Read an object; KeyError when missing."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool:
        """True when the object exists."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys under a prefix, sorted."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove an object (no error when missing)."""

    def list_versions(self, prefix: str = "") -> dict[str, str]:
        """Keys under a prefix with a tag that changes whenever the object does ('' unknown)."""
        return dict.fromkeys(self.list(prefix), "")

    def put_file(self, key: str, path: Path) -> None:
        """Upload a local file (large files stream; S3 uses multipart)."""
        self.put_bytes(key, Path(path).read_bytes())

    def get_file(self, key: str, path: Path) -> None:
        """Download an object to a local file."""
        Path(path).write_bytes(self.get_bytes(key))

    def put_text(self, key: str, text: str) -> None:
        """Write UTF-8 text atomically."""
        self.put_bytes(key, text.encode("utf-8"))

    def get_text(self, key: str) -> str:
        """Read UTF-8 text."""
        return self.get_bytes(key).decode("utf-8")

    def child(self, prefix: str) -> Store:
        """A view of this store under a key prefix."""
        return PrefixedStore(self, _clean_key(prefix))


class PrefixedStore(Store):
    """A store seen under a key prefix."""

    def __init__(self, inner: Store, prefix: str) -> None:
        self.inner, self.prefix = inner, prefix
        self.uri = f"{inner.uri.rstrip('/')}/{prefix}"

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{_clean_key(key)}" if self.prefix else _clean_key(key)

    def put_bytes(self, key: str, data: bytes) -> None:
        self.inner.put_bytes(self._key(key), data)

    def get_bytes(self, key: str) -> bytes:
        return self.inner.get_bytes(self._key(key))

    def exists(self, key: str) -> bool:
        return self.inner.exists(self._key(key))

    def list(self, prefix: str = "") -> Iterator[str]:
        cut = len(self.prefix) + 1 if self.prefix else 0
        for key in self.inner.list(self._key(prefix) if prefix else self.prefix):
            yield key[cut:]

    def delete(self, key: str) -> None:
        self.inner.delete(self._key(key))

    def list_versions(self, prefix: str = "") -> dict[str, str]:
        cut = len(self.prefix) + 1 if self.prefix else 0
        inner = self.inner.list_versions(self._key(prefix) if prefix else self.prefix)
        return {key[cut:]: tag for key, tag in inner.items()}

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
        return self.root / _clean_key(key)

    def _atomic_write(self, key: str, write: Callable[[BinaryIO], None]) -> None:
        """Write through a temporary file in the target's folder, then rename into place."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(handle, "wb") as out:
                write(out)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, 0o644)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def put_bytes(self, key: str, data: bytes) -> None:
        def write(out: BinaryIO) -> None:
            out.write(data)

        self._atomic_write(key, write)

    def put_file(self, key: str, path: Path) -> None:
        def copy(out: BinaryIO) -> None:
            with Path(path).open("rb") as source:
                shutil.copyfileobj(source, out, 1 << 22)

        self._atomic_write(key, copy)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise KeyError(key) from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> Iterator[str]:
        base = self._path(prefix) if prefix else self.root
        if base.is_file():
            yield _clean_key(prefix)
            return
        if not base.exists():
            return
        keys = (
            p.relative_to(self.root).as_posix()
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        )
        yield from sorted(keys)

    def list_versions(self, prefix: str = "") -> dict[str, str]:
        versions = {}
        for key in self.list(prefix):
            with contextlib.suppress(OSError):  # removed meanwhile: left out
                stat = self._path(key).stat()
                versions[key] = f"{stat.st_mtime_ns}-{stat.st_size}"
        return versions

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


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
            config=Config(
                retries={"max_attempts": 8, "mode": "standard"},
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{_clean_key(key)}" if self.prefix else _clean_key(key)

    def put_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def put_file(self, key: str, path: Path) -> None:
        self.client.upload_file(str(path), self.bucket, self._key(key))  # multipart when large

    def get_file(self, key: str, path: Path) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.download_file(self.bucket, self._key(key), str(path))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                raise KeyError(key) from None
            raise

    def get_bytes(self, key: str) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except self.client.exceptions.NoSuchKey:
            raise KeyError(key) from None
        body: bytes = response["Body"].read()
        return body

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def list(self, prefix: str = "") -> Iterator[str]:
        yield from sorted(self._listing(prefix))

    def _listing(self, prefix: str) -> dict[str, str]:
        cut = len(self.prefix) + 1 if self.prefix else 0
        full = self._key(prefix) if prefix else (self.prefix + "/" if self.prefix else "")
        paginator = self.client.get_paginator("list_objects_v2")
        listing: dict[str, str] = {}
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
            for item in page.get("Contents", []):
                listing[item["Key"][cut:]] = str(item.get("ETag", "")).strip('"')
        return listing

    def list_versions(self, prefix: str = "") -> dict[str, str]:
        return dict(sorted(self._listing(prefix).items()))

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))


def open_store(uri: str | Path, *, endpoint_url: str | None = None) -> Store:
    """A store from a URI: a path, ``file://...`` or ``s3://bucket/prefix``."""
    text = str(uri)
    parsed = urlparse(text)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ValueError(f"S3 URI without a bucket: {text!r}")
        return S3Store(parsed.netloc, parsed.path.lstrip("/"), endpoint_url=endpoint_url)
    if parsed.scheme == "file":
        return LocalStore(parsed.path)
    if parsed.scheme and len(parsed.scheme) > 1:
        raise ValueError(f"unsupported store URI {text!r}; expected a path, file:// or s3://")
    return LocalStore(text)


__all__ = ["LocalStore", "PrefixedStore", "S3Store", "Store", "StoreError", "open_store"]
