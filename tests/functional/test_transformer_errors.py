"""The real transformer handler on moto S3: S3 trouble fails the invocation, bad data never."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config

from handlers import transformer
from handlers.core.errors import StorageError
from handlers.core.storage import S3Storage
from pipeline.cli import s3_event
from tests.helpers import GOOD_RECORD, encode, read_lake

GOOD = {**GOOD_RECORD, "timestamp": "2026-01-05T10:00:00Z"}


def ndjson(n: int, prefix: str = "t") -> bytes:
    return b"".join(encode({**GOOD, "transaction_id": f"{prefix}-{i}"}) + b"\n" for i in range(n))


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.data


def s3_error(code: str, status: int) -> AWSResponse:
    body = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
    return AWSResponse(
        "https://s3.invalid/", status, {"Content-Type": "application/xml"}, _Body(body)
    )


class Injector:
    """A botocore before-send hook: answers chosen S3 calls with an error response.

    Real HTTP status and error XML, so botocore's retry logic and S3Storage's mapping of
    error codes to (transient) StorageErrors both run as they would against AWS.
    """

    def __init__(self, operation: str, code: str, status: int, times: int = 10**6) -> None:
        self.operation = operation
        self.code, self.status = code, status
        self.times = times  # how many calls fail before S3 recovers
        self.calls: list[str] = []
        self.only_keys: tuple[str, ...] = ()

    def __call__(self, request: Any, **_: Any) -> AWSResponse | None:
        if self.only_keys and not any(k in request.url for k in self.only_keys):
            return None
        self.calls.append(request.url)
        if len(self.calls) > self.times:
            return None
        return s3_error(self.code, self.status)


@pytest.fixture
def handler_storage(bucket: str) -> Iterator[S3Storage]:
    """The storage the handler will use for `bucket` (its per-container cache)."""
    transformer._storage.cache_clear()
    storage = transformer._storage(bucket)
    yield storage
    transformer._storage.cache_clear()


def use_client(storage: S3Storage, *, attempts: int, injector: Injector) -> None:
    client = boto3.client(
        "s3", config=Config(retries={"max_attempts": attempts, "mode": "standard"})
    )
    client.meta.events.register(f"before-send.s3.{injector.operation}", injector)
    storage._client = client


def test_throttled_writes_fail_the_invocation_and_the_retry_completes(
    bucket: str, handler_storage: S3Storage
) -> None:
    handler_storage.put_bytes("raw/batch.jsonl", ndjson(20))
    throttle = Injector("PutObject", "SlowDown", 503)
    # One attempt: the throttle reaches the transformer (as after botocore gives up).
    use_client(handler_storage, attempts=1, injector=throttle)
    event = s3_event(bucket, "raw/batch.jsonl")
    with pytest.raises(StorageError) as failure:
        transformer.handler(event)
    assert failure.value.transient and "SlowDown" in failure.value.reason
    assert throttle.calls, "the injected error was never hit"

    throttle.times = 0  # S3 recovers; Lambda runs the event again
    result = transformer.handler(event)
    (summary,) = result["objects"]
    assert (summary["records_in"], summary["processed"], summary["quarantined"]) == (20, 20, 0)
    lake = read_lake(S3Storage(bucket))
    assert sorted(r["transaction_id"] for r in lake.rows) == sorted(f"t-{i}" for i in range(20))


def test_botocore_retries_a_single_throttle_itself(bucket: str, handler_storage: S3Storage) -> None:
    handler_storage.put_bytes("raw/batch.jsonl", ndjson(5))
    throttle = Injector("PutObject", "SlowDown", 503, times=1)
    use_client(handler_storage, attempts=3, injector=throttle)
    result = transformer.handler(s3_event(bucket, "raw/batch.jsonl"))
    assert result["objects"][0]["processed"] == 5 and not result["failed"]
    # The first PUT was answered 503 and sent again by botocore's standard retry mode.
    assert len(throttle.calls) >= 2 and throttle.calls[0] == throttle.calls[1]


def test_a_read_error_fails_the_invocation(bucket: str, handler_storage: S3Storage) -> None:
    handler_storage.put_bytes("raw/batch.jsonl", ndjson(3))
    broken = Injector("GetObject", "InternalError", 500)
    broken.only_keys = ("raw/batch.jsonl",)
    use_client(handler_storage, attempts=1, injector=broken)
    with pytest.raises(StorageError) as failure:
        transformer.handler(s3_event(bucket, "raw/batch.jsonl"))
    assert failure.value.transient
    lake = read_lake(S3Storage(bucket))
    assert not lake.rows and not lake.entries
    assert not [k for k in lake.files if k.startswith("processed/data/")]


def test_one_failing_object_fails_the_invocation_not_the_others(
    bucket: str, handler_storage: S3Storage
) -> None:
    handler_storage.put_bytes("raw/a.jsonl", ndjson(4, "a"))
    handler_storage.put_bytes("raw/b.jsonl", ndjson(4, "b"))
    broken = Injector("PutObject", "SlowDown", 503)
    broken.only_keys = ("/b.",)  # the outputs of raw/b.jsonl only
    use_client(handler_storage, attempts=1, injector=broken)
    event = s3_event(bucket, "raw/a.jsonl")
    event["Records"] += s3_event(bucket, "raw/b.jsonl")["Records"]
    with pytest.raises(StorageError, match=r"raw/b\.jsonl"):
        transformer.handler(event)
    ids = {r["transaction_id"] for r in read_lake(S3Storage(bucket)).rows}
    assert ids == {f"a-{i}" for i in range(4)}

    broken.times = 0
    result = transformer.handler(event)  # the retry: a is skipped, b is done
    by_key = {o["source_key"]: o for o in result["objects"]}
    assert by_key["raw/a.jsonl"]["skipped"] == "already processed"
    assert by_key["raw/b.jsonl"]["processed"] == 4
    assert len(read_lake(S3Storage(bucket)).rows) == 8


def test_bad_records_never_fail_the_invocation(bucket: str, handler_storage: S3Storage) -> None:
    lines = [
        encode(GOOD),
        b"{not json",
        b"\xff\xfe",
        b"[1, 2]",
        encode({**GOOD, "transaction_id": "t-2", "quantity": "2"}),
        encode({**GOOD, "transaction_id": "t-3", "category": "Weapons"}),
        encode(GOOD),  # a duplicate id
    ]
    handler_storage.put_bytes("raw/bad.jsonl", b"\n".join(lines) + b"\n")
    result = transformer.handler(s3_event(bucket, "raw/bad.jsonl"))
    (summary,) = result["objects"]
    assert not result["failed"]
    assert (summary["processed"], summary["quarantined"]) == (1, 6)
