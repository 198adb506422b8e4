"""Shared fixtures: hypothesis profiles, an isolated AWS environment and a moto S3 server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from handlers.core.table import CATALOG_URI_ENV

# Tests must never reach a real AWS endpoint or use a developer's credentials.
for _name, _value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}.items():
    os.environ[_name] = _value
os.environ.pop("AWS_PROFILE", None)
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("ICEBERG_CATALOG_URI", None)

settings.register_profile(
    "ci",
    max_examples=40,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "dev",
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

EVENTS_DIR = Path(__file__).parent / "events"


@pytest.fixture(autouse=True)
def _remove_scratch_dirs() -> Iterator[None]:
    """Per-example temporary lakes (tests.helpers.scratch_dir) go when their test ends."""
    yield
    from tests.helpers import remove_scratch_dirs

    remove_scratch_dirs()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 for the whole session (real HTTP, no AWS)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_endpoint(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """Points boto3 (AWS_ENDPOINT_URL) at the moto server for one test.

    The bucket's Iceberg table is held by a SQL catalog on a SQLite file of the test
    (moto has no Glue catalog that detects commit conflicts); its files are on moto.
    """
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv(CATALOG_URI_ENV, f"sqlite:///{tmp_path / 'iceberg-catalog.db'}")
    return moto_endpoint


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    """A fresh, empty bucket on the moto server."""
    import boto3

    name = f"test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name
