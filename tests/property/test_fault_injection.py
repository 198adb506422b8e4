"""Stateful property: whatever S3 and Lambda do, once retries have run the lake is exact.

The machine plays S3 and Lambda against the transformer on moto's S3 server: objects land
and are overwritten, their events are delivered late, out of order and more than once,
and any invocation may meet failed writes, writes whose acknowledgement is lost, a crash
halfway through a file's outputs, throttling (a real 503 SlowDown answered through
botocore, so the client's own error mapping runs) or failing deletes. A failed invocation
stays pending, as Lambda retries it. After every step no object is orphaned; once the
pending events have run, each record of each key's latest version is in `processed/` or
`quarantine/` exactly once and nothing of a superseded version remains.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from unittest import mock

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import handlers.core.transform as transform_module
from handlers.core import manifest as manifests
from handlers.core.entries import load_entries
from handlers.core.errors import StorageError
from handlers.core.events import process_event
from handlers.core.layout import MANIFEST_PREFIX, key_id, output_base
from handlers.core.storage import PROCESSED_PREFIX, QUARANTINE_PREFIX, S3Storage
from pipeline.cli import s3_event
from tests.helpers import encode

KEYS = ("raw/a.jsonl", "raw/b.jsonl")
CHUNK_BYTES = 1000  # a few records per chunk: files span several chunks and partitions
DAYS = ("2026-01-01T10:00:00Z", "2026-01-02T23:59:59Z", "2026-01-03T00:30:00-01:00")
SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)
_ENDPOINT: list[str] = []


@pytest.fixture(autouse=True)
def _moto_endpoint(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # A state machine can't take fixtures: it finds the server here.
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    _ENDPOINT[:] = [moto_endpoint]
    # Hundreds of requests per example: the server's access log would only slow it down.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


class _Body:
    """The raw body of a canned botocore response."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.data

    def read(self, *_: Any) -> bytes:
        return self.data


class FaultyStorage(S3Storage):
    """The bucket, failing on cue during one invocation.

    Puts are counted from 1 per invocation; a plan names which fail outright, which are
    written but answered with an error (the acknowledgement is lost), from which one on
    every put fails (the process dies), and which are throttled by S3 itself: those go
    through botocore and come back as a 503 SlowDown, which S3Storage must map to a
    transient error. Deletes can fail too.
    """

    def __init__(self, bucket: str, client: Any) -> None:
        super().__init__(bucket, client)
        client.meta.events.register("before-send.s3.PutObject", self._throttle)
        self.disarm()

    def arm(self, plan: dict[str, Any]) -> None:
        self.plan = plan
        self.puts = 0
        self.throttling = False

    def disarm(self) -> None:
        self.arm(NO_FAULTS)

    def _throttle(self, request: Any, **_: Any) -> AWSResponse | None:
        if not self.throttling:
            return None
        headers = {"Content-Type": "application/xml", "x-amz-request-id": "injected"}
        return AWSResponse(request.url, 503, headers, _Body(SLOW_DOWN))

    def put_bytes(self, key: str, data: bytes) -> None:
        self.puts += 1
        n, plan = self.puts, self.plan
        crash = plan["crash_from"] is not None and n >= plan["crash_from"]
        if n in plan["fail"] or crash:
            raise StorageError("write", key, "injected: connection reset", transient=True)
        self.throttling = n in plan["throttle"]
        try:
            super().put_bytes(key, data)
        finally:
            self.throttling = False
        if n in plan["ghost"]:
            raise StorageError("write", key, "injected: reply lost after writing", transient=True)

    def delete(self, key: str) -> None:
        if self.plan["fail_deletes"]:
            raise StorageError("delete", key, "injected: InternalError", transient=True)
        super().delete(key)


NO_FAULTS: dict[str, Any] = {
    "fail": frozenset(),
    "ghost": frozenset(),
    "crash_from": None,
    "throttle": frozenset(),
    "fail_deletes": False,
}
puts = st.integers(1, 14)
mixed_faults = st.fixed_dictionaries(
    {
        "fail": st.frozensets(puts, max_size=2),
        "ghost": st.frozensets(puts, max_size=2),
        "crash_from": st.none() | puts,
        "throttle": st.frozensets(puts, max_size=2),
        "fail_deletes": st.booleans(),
    }
)
one_fault = st.one_of(
    puts.map(lambda n: {**NO_FAULTS, "fail": frozenset([n])}),
    puts.map(lambda n: {**NO_FAULTS, "ghost": frozenset([n])}),
    puts.map(lambda n: {**NO_FAULTS, "crash_from": n}),
    puts.map(lambda n: {**NO_FAULTS, "throttle": frozenset([n])}),
    st.just({**NO_FAULTS, "fail_deletes": True}),
)
# Mostly one fault at a time (each reaches its own stage of the run), sometimes none,
# sometimes several at once.
fault_plans = st.one_of(st.just(NO_FAULTS), one_fault, one_fault, mixed_faults)
# Each record: valid or breaking one rule, on one of three UTC days.
records = st.lists(
    st.tuples(st.sampled_from(["ok", "ok", "ok", "zero", "weapons"]), st.integers(0, 2)),
    min_size=1,
    max_size=12,
)


def record(tx_id: str, kind: str, day: int) -> dict[str, Any]:
    price = Decimal("12.50")
    quantity = 0 if kind == "zero" else 2
    return {
        "transaction_id": tx_id,
        "timestamp": DAYS[day],
        "customer_id": "C000001",
        "product_id": "P01001",
        "product_name": "Wireless Earbuds",
        "category": "Weapons" if kind == "weapons" else "Electronics",
        "quantity": quantity,
        "price": price,
        "total_amount": price * quantity,
    }


class FaultInjectionMachine(RuleBasedStateMachine):
    """S3 and Lambda misbehaving around the transformer."""

    storage_class: type[FaultyStorage] = FaultyStorage

    def __init__(self) -> None:
        super().__init__()
        self.bucket = f"faults-{uuid.uuid4().hex[:12]}"
        client = boto3.client(
            "s3",
            endpoint_url=_ENDPOINT[0],
            # No client-side retries: a throttled write reaches the transformer, whose
            # invocation fails and is retried the way Lambda retries it.
            config=Config(retries={"max_attempts": 1, "mode": "standard"}),
        )
        client.create_bucket(Bucket=self.bucket)
        self.client = client
        self.storage = self.storage_class(self.bucket, client)
        self.landings = 0
        self.expected: dict[str, tuple[set[str], set[str]]] = {}  # key -> (valid, invalid)
        self.pending: list[dict[str, Any]] = []  # events Lambda still has to run
        self.delivered: list[dict[str, Any]] = []
        self.failures = 0
        # Several chunks per file, so a crash can fall between chunks too.
        self.patch = mock.patch.object(
            transform_module,
            "transform_object",
            functools.partial(transform_module.transform_object, chunk_bytes=CHUNK_BYTES),
        )
        self.patch.start()

    def teardown(self) -> None:
        try:
            self.settle()
        finally:
            self.patch.stop()

    # ------------------------------------------------------------------ S3 and Lambda

    @rule(key=st.sampled_from(KEYS), batch=records)
    def land(self, key: str, batch: list[tuple[str, int]]) -> None:
        """A new object, or new content under an existing key; S3 queues its event."""
        self.landings += 1
        valid, invalid, lines = set(), set(), []
        for n, (kind, day) in enumerate(batch):
            tx_id = f"{key}#{self.landings}#{n}"
            (valid if kind == "ok" else invalid).add(tx_id)
            lines.append(encode(record(tx_id, kind, day)))
        self.client.put_object(Bucket=self.bucket, Key=key, Body=b"\n".join(lines) + b"\n")
        self.expected[key] = (valid, invalid)
        self.pending.append(s3_event(self.bucket, key))

    @precondition(lambda self: self.pending)
    @rule(pick=st.integers(0, 50), plan=fault_plans)
    def deliver(self, pick: int, plan: dict[str, Any]) -> None:
        """Lambda runs a pending event (any of them: delivery order is not landing order)."""
        event = self.pending.pop(pick % len(self.pending))
        if self._invoke(event, plan):
            self.delivered.append(event)
        else:
            self.pending.append(event)  # Lambda retries it later

    @precondition(lambda self: self.delivered)
    @rule(pick=st.integers(0, 50), plan=fault_plans)
    def redeliver(self, pick: int, plan: dict[str, Any]) -> None:
        """S3 delivers at least once: an event that already ran arrives again."""
        event = self.delivered[pick % len(self.delivered)]
        if not self._invoke(event, plan):
            self.pending.append(event)

    def _invoke(self, event: dict[str, Any], plan: dict[str, Any]) -> bool:
        """One Lambda invocation, as handlers.transformer.handler runs it."""
        self.storage.arm(plan)
        try:
            outcome = process_event(event, lambda _bucket: self.storage)
        finally:
            self.storage.disarm()
        if outcome.failed:
            self.failures += 1  # the handler raises here: the invocation fails
            return False
        return True

    # ------------------------------------------------------------------ what must hold

    def _manifests(self) -> dict[str, manifests.Manifest]:
        found = {}
        for info in self.storage.list(MANIFEST_PREFIX):
            data = self.storage.read_bytes(info.key)
            m = manifests.Manifest(**{k: v for k, v in _json(data).items() if k in _FIELDS})
            found[m.source_key] = m
        return found

    def _outputs(self) -> list[str]:
        return [
            info.key
            for prefix in (PROCESSED_PREFIX, QUARANTINE_PREFIX)
            for info in self.storage.list(prefix)
        ]

    @invariant()
    def nothing_is_orphaned(self) -> None:
        # A manifest lists every object before it is written: whatever failed, each
        # object in the lake is known to its source key's manifest (so it is cleaned up).
        known = set()
        for m in self._manifests().values():
            known.update(m.outputs, m.garbage)
        orphans = set(self._outputs()) - known
        assert not orphans, f"objects no manifest knows: {sorted(orphans)}"

    @rule()
    def settle(self) -> None:
        """Lambda's retries run (and now succeed); then the lake must be exact."""
        for _ in range(3 * len(KEYS) + len(self.pending)):
            if not self.pending:
                break
            event = self.pending.pop(0)
            assert self._invoke(event, NO_FAULTS), "an invocation fails without faults"
            self.delivered.append(event)
        assert not self.pending
        self._check_lake()

    def _check_lake(self) -> None:
        found = self._manifests()
        outputs = self._outputs()
        for key, (valid, invalid) in self.expected.items():
            version = self.storage.stat(key).version
            m = found[key]
            assert (m.version, m.status, m.garbage) == (version, manifests.COMPLETE, [])
            mine = [k for k in outputs if f".{key_id(key)}." in k]
            base = output_base(key, version)
            stale = [k for k in mine if not k.rsplit("/", 1)[-1].startswith(base + ".")]
            assert not stale, f"{key}: objects of a superseded version remain: {stale}"
            assert sorted(mine) == sorted(m.outputs), f"{key}: lake and manifest disagree"
            processed: list[str] = []
            quarantined: list[str] = []
            for k in mine:
                data = self.storage.read_bytes(k)
                if k.startswith(PROCESSED_PREFIX):
                    table = pq.read_table(pa.BufferReader(data))  # whole, readable files only
                    processed += table.column("transaction_id").to_pylist()
                else:
                    entries = load_entries(data)
                    assert all(e["source_version"] == version for e in entries)
                    quarantined += [e["record"]["transaction_id"] for e in entries]
            assert sorted(processed) == sorted(valid), f"{key}: processed rows lost or doubled"
            assert sorted(quarantined) == sorted(invalid), f"{key}: entries lost or doubled"


_FIELDS = set(manifests.Manifest.__dataclass_fields__)


def _json(data: bytes) -> dict[str, Any]:
    import orjson

    return orjson.loads(data)


def _settings(**overrides: Any) -> settings:
    base = {
        "max_examples": min(settings().max_examples, 15),
        "stateful_step_count": 10,
        "deadline": None,
        "suppress_health_check": [HealthCheck.too_slow, HealthCheck.filter_too_much],
    }
    return settings(settings(), **{**base, **overrides})


def test_lake_is_exact_whatever_s3_and_lambda_do() -> None:
    run_state_machine_as_test(FaultInjectionMachine, settings=_settings())


class NeverDeletes(FaultyStorage):
    """A seeded bug: a writer whose deletes do nothing, so replaced versions linger."""

    def delete(self, key: str) -> None:
        return None


class NeverDeletesMachine(FaultInjectionMachine):
    storage_class = NeverDeletes


def test_the_machine_catches_a_writer_that_leaves_old_versions() -> None:
    # Proof the property has teeth: the same machine against a broken writer fails.
    # Derandomized: the same examples every run, so the bug cannot be missed by chance.
    broken = _settings(
        max_examples=200,
        database=None,
        phases=[Phase.generate],
        print_blob=False,
        derandomize=True,
    )
    with pytest.raises(AssertionError, match=r"superseded version remain|no manifest knows"):
        run_state_machine_as_test(NeverDeletesMachine, settings=broken)
