"""What the transformer Lambda writes to CloudWatch: JSON log lines and EMF metrics."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from aws_lambda_powertools.metrics.provider import cold_start

from handlers import transformer
from handlers.core import metrics as names
from handlers.core.errors import StorageError
from handlers.core.storage import S3Storage
from pipeline.cli import s3_event
from tests.functional.test_transformer_errors import Injector, ndjson, use_client
from tests.functional.test_transformer_errors import handler_storage as handler_storage


def parsed(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


@pytest.fixture
def captured_log() -> Iterator[io.StringIO]:
    handler = transformer.logger.registered_handler
    stream = io.StringIO()
    previous = handler.setStream(stream)  # type: ignore[attr-defined]
    yield stream
    handler.setStream(previous)  # type: ignore[attr-defined]


def test_a_failed_transform_logs_its_key_and_reason_as_json(
    bucket: str, handler_storage: S3Storage, captured_log: io.StringIO
) -> None:
    handler_storage.put_bytes("raw/dt=2026-11-30/orders.jsonl", ndjson(5))
    use_client(handler_storage, attempts=1, injector=Injector("PutObject", "SlowDown", 503))
    with pytest.raises(StorageError):
        transformer.handler(s3_event(bucket, "raw/dt=2026-11-30/orders.jsonl"))
    (failed,) = [line for line in parsed(captured_log) if line["message"] == "transform failed"]
    assert failed["level"] == "ERROR"
    assert failed["key"] == "raw/dt=2026-11-30/orders.jsonl"
    assert "SlowDown" in failed["reason"]
    # Who said it: the stack, the function and the invocation, on the same line.
    assert failed["stack"] == transformer.STACK
    assert failed["service"] == names.SERVICE
    assert failed["function_name"] == "local"
    assert len(failed["function_request_id"]) == 36


def test_every_line_of_a_transform_names_stack_function_request_and_key(
    bucket: str, handler_storage: S3Storage, captured_log: io.StringIO
) -> None:
    handler_storage.put_bytes("raw/a.jsonl", ndjson(3))
    context = transformer.LocalContext.make("ecommerce-dev-transformer")
    transformer.handler(s3_event(bucket, "raw/a.jsonl"), context)
    lines = parsed(captured_log)
    assert lines, "the handler logged nothing"
    for line in lines:
        assert line["stack"] == transformer.STACK
        assert line["function_name"] == "ecommerce-dev-transformer"
        assert line["function_request_id"] == context.aws_request_id
    (done,) = [line for line in lines if line["message"] == "transformed"]
    assert done["key"] == "raw/a.jsonl" and done["records_in"] == 3


def emf_documents(text: str) -> list[dict[str, Any]]:
    docs = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    return [d for d in docs if "_aws" in d]


def test_metrics_are_emf_with_the_names_and_dimensions_the_alarms_watch(
    bucket: str, handler_storage: S3Storage, capsys: pytest.CaptureFixture[str]
) -> None:
    handler_storage.put_bytes("raw/b.jsonl", ndjson(4) + b"not json\n")
    cold_start.reset_cold_start_flag()  # this test plays a fresh container
    transformer.handler(s3_event(bucket, "raw/b.jsonl"))
    docs = emf_documents(capsys.readouterr().out)
    emitted: dict[str, dict[str, Any]] = {}
    for doc in docs:
        (directive,) = doc["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == names.NAMESPACE
        for metric in directive["Metrics"]:
            emitted[metric["Name"]] = {**doc, "dimension_sets": directive["Dimensions"]}
    assert set(emitted) == names.EMITTED  # what infra/monitoring.py may alarm on
    rate = emitted[names.QUARANTINE_RATE]
    assert rate[names.QUARANTINE_RATE] in (20.0, [20.0])  # one object: one value
    # Exactly the dimension set the quarantine-rate alarm names.
    alarm_dimensions = sorted(names.dimensions(transformer.STACK))
    assert [alarm_dimensions] == [sorted(d) for d in rate["dimension_sets"]]
    assert rate["service"] == names.SERVICE and rate["stack"] == transformer.STACK
    assert emitted[names.QUARANTINED_BY_RULE]["rule"] == "json_syntax"
