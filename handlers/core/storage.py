"""One storage interface, two backends: an S3 bucket or a local directory that mirrors it."""

from __future__ import annotations

import glob
import hashlib
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from handlers.core.errors import BucketNotFound, ConfigError, ObjectNotFound, StorageError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client  # pragma: no cover

RAW_PREFIX = "raw/"
PROCESSED_PREFIX = "processed/"
QUARANTINE_PREFIX = "quarantine/"
STATE_PREFIX = "_state/"


@dataclass(frozen=True)
class ObjectInfo:
    """What a backend knows about one object."""

    key: str
    size: int
    version: str  # changes whenever the content may have changed
    last_modified: datetime


class Storage(ABC):
    """Key/value object store with S3 semantics; every write is atomic."""

    url: str

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo:
        """Metadata of `key`; raises ObjectNotFound."""

    @abstractmethod
    def open_read(self, key: str, version: str | None = None) -> IO[bytes]:
        """A binary stream of the object; with `version`, fail if it changed since stat."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None:
        """Write the whole object at once: readers see the old or the new, never a part."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; a missing object is not an error."""

    @abstractmethod
    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object under `prefix`, in key order."""

    @abstractmethod
    def read_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes `start` (inclusive) to `end` (exclusive) of the object, fewer past its end."""

    @abstractmethod
    def read_tail(self, key: str, n: int) -> bytes:
        """The last `n` bytes of the object (all of it when it is shorter)."""

    def prepare_threads(self) -> None:
        """Set up what concurrent calls share, before threads share it (nothing by default)."""
        return

    def read_bytes(self, key: str) -> bytes:
        with self.open_read(key) as stream:
            return stream.read()

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except ObjectNotFound:
            return False
        return True


class LocalStorage(Storage):
    """A directory whose layout mirrors the bucket (`raw/`, `processed/`, `quarantine/`)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        self.url = str(self.root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if path != self.root and self.root not in path.parents:
            raise StorageError("resolve", key, "key escapes the lake directory", transient=False)
        return path

    def stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        try:
            st = path.stat()
        except FileNotFoundError as e:
            raise ObjectNotFound(key) from e
        except OSError as e:
            raise StorageError("stat", key, e.strerror or str(e), transient=False) from e
        if not path.is_file():
            raise ObjectNotFound(key)
        # Size and mtime, like an ETag for our purposes; no inode, so a copied lake keeps them.
        token = hashlib.sha256(f"{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()
        return ObjectInfo(
            key=key,
            size=st.st_size,
            version=token[:16],
            last_modified=datetime.fromtimestamp(st.st_mtime, UTC),
        )

    def open_read(self, key: str, version: str | None = None) -> IO[bytes]:
        if version is not None and self.stat(key).version != version:
            raise StorageError("read", key, "object changed since it was listed", transient=True)
        try:
            return self._path(key).open("rb")
        except FileNotFoundError as e:
            raise ObjectNotFound(key) from e
        except OSError as e:
            raise StorageError("read", key, e.strerror or str(e), transient=False) from e

    def read_range(self, key: str, start: int, end: int) -> bytes:
        _check_range(key, start, end)
        with self.open_read(key) as stream:
            stream.seek(start)
            return stream.read(max(0, end - start))

    def read_tail(self, key: str, n: int) -> bytes:
        _check_range(key, 0, n)
        with self.open_read(key) as stream:
            size = stream.seek(0, os.SEEK_END)
            stream.seek(max(0, size - n))
            return stream.read()

    def put_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write beside the target, then rename: readers never see a partial file.
            _remove_stray_temporaries(path)
            fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}.{os.getpid()}.", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                Path(tmp).replace(path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as e:
            raise StorageError("write", key, e.strerror or str(e), transient=False) from e

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as e:
            raise StorageError("delete", key, e.strerror or str(e), transient=False) from e

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        # S3 prefixes are plain string prefixes: "raw" also matches "rawx/...".
        base = self._path(prefix) if prefix else self.root
        start = base if prefix.endswith("/") or not prefix else base.parent
        if not start.exists():
            return
        keys = []
        for dirpath, _dirs, files in os.walk(start):
            for name in files:
                if name.startswith(".tmp-"):
                    continue
                key = Path(dirpath, name).relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        for key in sorted(keys):
            try:
                yield self.stat(key)
            except ObjectNotFound:
                continue  # removed while listing


_TRANSIENT_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
    "503",
    "500",
    "PreconditionFailed",
    "412",
}


def _remove_stray_temporaries(path: Path) -> None:
    """Delete temporaries a killed writer left for `path`: the next write of a key cleans up.

    A temporary is named after its target and its writer's process id; one whose writer
    no longer runs can never be renamed into place. Live writers' files are left alone.
    """
    for stray in path.parent.glob(f".tmp-{glob.escape(path.name)}.*"):
        pid = stray.name[len(f".tmp-{path.name}.") :].partition(".")[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _running(int(pid)):
            stray.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


class S3Storage(Storage):
    """A bucket, through boto3 (honours AWS_ENDPOINT_URL, e.g. a local moto server)."""

    def __init__(self, bucket: str, client: S3Client | None = None) -> None:
        if not bucket:
            raise ConfigError("bucket", "empty bucket name")
        self.bucket = bucket
        self.url = f"s3://{bucket}"
        self._client = client

    @property
    def client(self) -> S3Client:
        if self._client is None:
            import boto3  # lazy: keeps cold start and the local CLI light
            from botocore.config import Config

            self._client = boto3.client(
                "s3", config=Config(retries={"max_attempts": 5, "mode": "standard"})
            )
        return self._client

    def prepare_threads(self) -> None:
        # A boto3 client is thread-safe, creating one is not: build it before sharing it.
        _ = self.client

    def _fail(self, operation: str, key: str, error: Exception) -> StorageError:
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(error, ClientError):
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code == "NoSuchBucket" or (
                code in {"404", "NotFound"} and not self._bucket_exists()
            ):
                return BucketNotFound(self.bucket, key)
            if code in {"NoSuchKey", "404", "NotFound"}:
                return ObjectNotFound(key)
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            transient = code in _TRANSIENT_CODES or int(status or 0) >= 500
            return StorageError(operation, key, f"{code}: {error}", transient=transient)
        if isinstance(error, BotoCoreError | OSError):
            return StorageError(operation, key, str(error), transient=True)
        raise error

    def _bucket_exists(self) -> bool:
        """A HEAD's bare 404 means a missing key or a missing bucket: ask which."""
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            return code not in {"NoSuchBucket", "404", "NotFound"}
        return True

    def stat(self, key: str) -> ObjectInfo:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except Exception as e:
            raise self._fail("stat", key, e) from e
        return ObjectInfo(
            key=key,
            size=int(head["ContentLength"]),
            version=str(head.get("VersionId") or head["ETag"]).strip('"'),
            last_modified=head["LastModified"].astimezone(UTC),
        )

    def open_read(self, key: str, version: str | None = None) -> IO[bytes]:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version is not None:
            # Read exactly the version our outputs are named after; a newer write
            # makes this fail (412) and the retry picks up the latest content.
            if _is_version_id(version):
                kwargs["VersionId"] = version
            else:
                kwargs["IfMatch"] = f'"{version}"'
        try:
            body = self.client.get_object(**kwargs)["Body"]
        except Exception as e:
            raise self._fail("read", key, e) from e
        return _S3Stream(body, self, key)

    def read_range(self, key: str, start: int, end: int) -> bytes:
        _check_range(key, start, end)
        if end <= start:
            return b""
        return self._ranged(key, f"bytes={start}-{end - 1}")

    def read_tail(self, key: str, n: int) -> bytes:
        _check_range(key, 0, n)
        return self._ranged(key, f"bytes=-{n}") if n else b""

    def _ranged(self, key: str, byte_range: str) -> bytes:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key, Range=byte_range)["Body"]
        except Exception as e:
            code = ""
            response = getattr(e, "response", None)
            if isinstance(response, dict):
                code = str(response.get("Error", {}).get("Code", ""))
            if code == "InvalidRange":  # a range that starts past the end: nothing there
                return b""
            raise self._fail("read", key, e) from e
        with _S3Stream(body, self, key) as stream:
            return stream.read()

    def put_bytes(self, key: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data)
        except Exception as e:
            raise self._fail("write", key, e) from e

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except Exception as e:
            err = self._fail("delete", key, e)
            if not isinstance(err, ObjectNotFound):
                raise err from e

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    yield ObjectInfo(
                        key=item["Key"],
                        size=int(item["Size"]),
                        version=str(item["ETag"]).strip('"'),
                        last_modified=item["LastModified"].astimezone(UTC),
                    )
        except StorageError:
            raise
        except Exception as e:
            raise self._fail("list", prefix, e) from e


def _check_range(key: str, start: int, end: int) -> None:
    if start < 0 or end < 0:
        raise StorageError("read", key, f"negative byte range {start}..{end}", transient=False)


def _is_version_id(version: str) -> bool:
    # ETags are hex (optionally "-N" for multipart); anything else is a VersionId.
    head = version.split("-")[0]
    return not (len(head) == 32 and all(c in "0123456789abcdef" for c in head))


class _S3Stream:
    """Wraps a botocore body so read errors surface as StorageError."""

    def __init__(self, body: Any, storage: S3Storage, key: str) -> None:
        self._body = body
        self._storage = storage
        self._key = key

    def read(self, size: int = -1) -> bytes:
        try:
            return self._body.read() if size is None or size < 0 else self._body.read(size)
        except Exception as e:
            raise self._storage._fail("read", self._key, e) from e

    def close(self) -> None:
        self._body.close()

    def __enter__(self) -> _S3Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_storage(url: str) -> Storage:
    """`s3://bucket` selects S3; anything else is a local lake directory."""
    if url.startswith("s3://"):
        bucket = url.removeprefix("s3://").strip("/")
        if not bucket or "/" in bucket:
            raise ConfigError("lake", f"expected s3://<bucket>, got {url!r}")
        return S3Storage(bucket)
    if not url:
        raise ConfigError("lake", "empty lake path")
    return LocalStorage(url)
