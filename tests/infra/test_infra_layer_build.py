"""`make layer` for real: build from the pins, check Lambda's size limit, then run the handlers
in a fresh virtualenv that holds nothing but the layer and the function code archive.

Downloads wheels from PyPI on the first run (about a minute); `build/` caches the result.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from infra.layer import (
    LAMBDA_UNZIPPED_LIMIT,
    TRIMMED_MODULES,
    LayerManifest,
    LayerSpec,
    build,
    layer_zip_path,
)
from infra.packaging import write_code_zip

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = "python3.12"  # the stacks' runtime (Pulumi.<stack>.yaml: ecommerce:lambdaRuntime)

pytestmark = pytest.mark.slow


def _interpreter(version: str) -> str | None:
    """A real CPython of `version` on this machine, if any (pyenv's shims may be stubs)."""
    candidates = [shutil.which(f"python{version}")]
    candidates += sorted(
        glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}*/bin/python{version}"))
    )
    candidates += [f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return candidate
    return None


@pytest.fixture(scope="module")
def layers() -> dict[str, LayerManifest]:
    """The deployable layers of both stacks' architectures, as `make layer` builds them."""
    arches = ("x86_64", "arm64")
    # Two pip processes at once: the build is network-bound.
    with ThreadPoolExecutor(max_workers=len(arches)) as pool:
        built = pool.map(lambda arch: build(LayerSpec(arch, RUNTIME), log=print), arches)
        return dict(zip(arches, built, strict=True))


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_layer_and_code_fit_lambdas_limit(
    layers: dict[str, LayerManifest], arch: str, tmp_path: Path
) -> None:
    manifest = layers[arch]
    code_bytes = write_code_zip(ROOT, tmp_path / "code.zip")
    total = manifest.unzipped_bytes + code_bytes
    print(
        f"\n{arch}: layer {manifest.zip_bytes / 2**20:.1f} MiB zipped, "
        f"{manifest.unzipped_bytes / 2**20:.1f} MiB unzipped "
        f"(+{code_bytes / 2**10:.0f} KiB code) of {LAMBDA_UNZIPPED_LIMIT / 2**20:.0f} MiB; "
        f"trimmed {manifest.trimmed_bytes / 2**20:.1f} MiB"
    )
    assert total < LAMBDA_UNZIPPED_LIMIT
    with zipfile.ZipFile(layer_zip_path(ROOT, arch)) as zf:
        names = zf.namelist()
        unzipped = sum(info.file_size for info in zf.infolist())
    assert unzipped == manifest.unzipped_bytes
    assert all(name.startswith("python/") for name in names)  # Lambda's /opt/python
    # What the trim promises: no test suites, no bytecode, no build sources.
    assert not [n for n in names if "/tests/" in n or n.endswith((".pyc", ".pyx", ".h"))]
    for package in ("pandas", "pandera", "pyarrow", "numpy", "orjson", "aws_lambda_powertools"):
        assert f"python/{package}/__init__.py" in names
    # The pins, not whatever is newest: the versions the tests ran with are what ships.
    pins = {
        line.split("==")[0].lower().replace("_", "-"): line.split("==")[1].strip()
        for line in (ROOT / "requirements-lambda.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    shipped = {}
    for name in names:
        if name.endswith(".dist-info/METADATA"):
            dist, version = name.split("/")[1].removesuffix(".dist-info").rsplit("-", 1)
            shipped[dist.lower().replace("_", "-")] = version
    for name, version in pins.items():
        assert shipped[name] == version, name


def test_the_build_is_reproducible_and_cached(layers: dict[str, LayerManifest]) -> None:
    again = build(LayerSpec("x86_64", RUNTIME), log=lambda _: None)
    assert again == layers["x86_64"]


@pytest.fixture(scope="module")
def lambda_venv(
    layers: dict[str, LayerManifest], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """A fresh venv laid out like Lambda: the code archive at /var/task, the layer at /opt.

    With a python3.12 on this machine it runs the deployable x86_64 layer itself. Without
    one it builds the same pins as cp311 wheels for this machine's python3.11: that proves
    the pins resolve to wheels and import together, not that the cp312 files load.
    """
    base = tmp_path_factory.mktemp("lambda")
    python = _interpreter("3.12")
    if python is not None:
        layer_zip, proves = layer_zip_path(ROOT, "x86_64"), "the deployable python3.12 layer"
    else:
        python = _interpreter("3.11") or sys.executable
        layer_zip = ROOT / "build" / "test-layer-python3.11-x86_64.zip"
        build(LayerSpec("x86_64", "python3.11", output=layer_zip), log=print)
        proves = "a python3.11 build of the same pins (no python3.12 here)"
    venv = base / "venv"
    subprocess.run([python, "-m", "venv", "--without-pip", str(venv)], check=True)
    task, opt = base / "task", base / "opt"
    with zipfile.ZipFile(layer_zip) as zf:
        zf.extractall(opt)
    write_code_zip(ROOT, base / "code.zip")
    with zipfile.ZipFile(base / "code.zip") as zf:
        zf.extractall(task)
    site = next((venv / "lib").glob("python3.*/site-packages"))
    # Lambda's search order: function code first, then the layer.
    (site / "lambda.pth").write_text(f"{task}\n{opt / 'python'}\n")
    print(f"\nimport test runs {proves} with {python}")
    return {"python": str(venv / "bin" / "python"), "task": task, "opt": opt, "base": base}


def _run_in_lambda(
    env: dict[str, Any], code: str, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(env["base"]),
        "LANG": "C.UTF-8",
        **(extra_env or {}),
    }
    return subprocess.run(
        [env["python"], "-c", code],
        cwd=env["base"],  # not the repo: nothing from the work tree can leak in
        env=clean,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_venv_holds_only_the_layer_and_the_code(lambda_venv: dict[str, Any]) -> None:
    probe = _run_in_lambda(
        lambda_venv,
        "import importlib.util as u, json, pandas, handlers;"
        "print(json.dumps({'pandas': pandas.__file__, 'handlers': handlers.__file__,"
        " 'absent': [m for m in ('pytest', 'moto', 'infra', 'pipeline', 'hypothesis', 'duckdb')"
        " if u.find_spec(m) is None]}))",
    )
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    assert found["pandas"].startswith(str(lambda_venv["opt"]))
    assert found["handlers"].startswith(str(lambda_venv["task"]))
    assert found["absent"] == ["pytest", "moto", "infra", "pipeline", "hypothesis", "duckdb"]
    # What the trim removed is really gone, so the handler runs below prove it unused.
    gone = _run_in_lambda(
        lambda_venv,
        "import importlib.util as u, json;"
        f"print(json.dumps([m for m in {list(TRIMMED_MODULES)!r} if u.find_spec(m) is not None]))",
    )
    assert gone.returncode == 0, gone.stderr
    assert json.loads(gone.stdout) == []


DRIVER = """
import json, sys
from handlers import generator, transformer

summary = generator.handler({"time": "2026-03-04T05:06:07Z"}, None)
event = {"Records": [{
    "eventSource": "aws:s3",
    "eventName": "ObjectCreated:Put",
    "s3": {"bucket": {"name": BUCKET}, "object": {"key": summary["key"]}},
}]}
result = transformer.handler(event, None)
print("RESULT " + json.dumps({"generated": summary, "transformed": result}, default=str))
# Nothing the trim removed was imported on the way.
print("MODULES " + json.dumps(sorted(sys.modules)))
"""

MAINTENANCE_DRIVER = """
import json, sys
from handlers import maintenance

event = json.loads(open(EVENT).read())
print("RESULT " + json.dumps(maintenance.handler(event, None), default=str))
print("MODULES " + json.dumps(sorted(sys.modules)))
"""
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def _glue_database(bucket: str) -> str:
    # One database per bucket: the moto server (and its Glue) is shared by the session.
    return "ecommerce_" + bucket.replace("-", "_")


def _glue_table(bucket: str, monkeypatch: pytest.MonkeyPatch, endpoint: str) -> Any:
    """The stack's Iceberg table in moto's Glue and S3, as `pulumi up` leaves it."""
    import boto3

    from handlers.core.storage import S3Storage
    from handlers.core.table import load_table

    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("GLUE_DATABASE", _glue_database(bucket))
    monkeypatch.delenv("ICEBERG_CATALOG_URI", raising=False)
    boto3.client("s3").create_bucket(Bucket=bucket)
    glue = boto3.client("glue")
    if _glue_database(bucket) not in [d["Name"] for d in glue.get_databases()["DatabaseList"]]:
        glue.create_database(DatabaseInput={"Name": _glue_database(bucket)})
    return load_table(S3Storage(bucket), create=True)


def _imported_trimmed(stdout: str) -> list[str]:
    modules = json.loads(stdout.split("MODULES ", 1)[1].splitlines()[0])
    return [m for m in modules if m.startswith(TRIMMED_MODULES)]


def test_handlers_generate_and_transform_a_batch_from_the_layer(
    lambda_venv: dict[str, Any], moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    bucket = "layer-test-lake"
    s3 = boto3.client("s3", endpoint_url=moto_endpoint)
    table = _glue_table(bucket, monkeypatch, moto_endpoint)
    aws_env = {**AWS_ENV, "AWS_ENDPOINT_URL": moto_endpoint}
    # The environment the Pulumi program gives each function (both in one process here).
    lambda_env = {
        "LAKE_URL": f"s3://{bucket}",
        "GLUE_DATABASE": _glue_database(bucket),
        "ICEBERG_TABLE": "transactions",
        "BATCH_SIZE": "200",
        "FAULT_RATE": "0.1",
        "STACK": "layertest",
        "LOG_LEVEL": "INFO",
        "POWERTOOLS_SERVICE_NAME": "transformer",
        "POWERTOOLS_METRICS_NAMESPACE": "EcommercePipeline",
    }
    run = _run_in_lambda(lambda_venv, f"BUCKET = {bucket!r}\n" + DRIVER, {**aws_env, **lambda_env})
    assert run.returncode == 0, run.stderr[-4000:]
    result = json.loads(run.stdout.split("RESULT ", 1)[1].splitlines()[0])
    generated = result["generated"]
    assert generated["key"].startswith("raw/") and generated["records"] == 200

    assert _imported_trimmed(run.stdout) == []

    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    quarantined = [k for k in keys if k.startswith("quarantine/dt=") and k.endswith(".jsonl")]
    assert quarantined, keys
    table.refresh()
    assert table.current_snapshot() is not None, "the transformer committed nothing"
    # The Iceberg writer committed the batch: read it back through the Glue table.
    committed = table.scan().to_arrow()
    assert committed.schema.names == table.schema().as_arrow().names
    rows = committed.num_rows
    entries = [
        json.loads(line)
        for key in quarantined
        for line in s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode().splitlines()
    ]
    assert rows > 0 and entries
    # Conservation: every generated line is one processed row or one quarantine entry.
    assert rows + len(entries) == generated["records"]
    assert len(entries) >= generated["faults"] > 0
    for entry in entries:
        # The shape the Glue quarantine table declares.
        assert {"entry_id", "record", "record_is_raw_text", "errors", "source_key"} <= set(entry)
        assert all({"column", "check", "value"} <= set(e) for e in entry["errors"])

    # The metric the quarantine-rate alarm watches, exactly as the transformer emits it.
    emf = [
        json.loads(line)
        for line in run.stdout.splitlines()
        if line.startswith("{") and '"_aws"' in line and "QuarantineRate" in line
    ]
    assert emf, run.stdout[-2000:]
    directive = emf[0]["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "EcommercePipeline"
    assert ["service", "stack"] in [sorted(d) for d in directive["Dimensions"]]
    assert {"Name": "QuarantineRate", "Unit": "Percent"} in directive["Metrics"]
    assert (emf[0]["service"], emf[0]["stack"]) == ("transformer", "layertest")


def test_the_maintenance_handler_compacts_a_glue_table_from_the_layer(
    lambda_venv: dict[str, Any], moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Compaction, expiry and orphan listing through moto's Glue and S3 with only the layer:
    pyarrow's S3 filesystem, zstd Parquet, Avro manifests and the Glue catalog commit."""
    from datetime import date

    from pipeline.bench_iceberg import batch_rows

    bucket = "layer-test-maintenance"
    table = _glue_table(bucket, monkeypatch, moto_endpoint)
    for b in range(4):
        table.append(batch_rows(date(2026, 3, 4), b, 25))
    expected = sorted(table.scan().to_arrow().column("transaction_id").to_pylist())
    env = {
        **AWS_ENV,
        "AWS_ENDPOINT_URL": moto_endpoint,
        "LAKE_URL": f"s3://{bucket}",
        "GLUE_DATABASE": _glue_database(bucket),
        "ICEBERG_TABLE": "transactions",
        "TARGET_FILE_MB": "64",
        "SNAPSHOT_RETENTION_HOURS": "24",
        "ORPHAN_MIN_AGE_HOURS": "1",
        "STACK": "layertest",
        "LOG_LEVEL": "INFO",
    }
    event = ROOT / "tests" / "events" / "eventbridge_schedule.json"
    run = _run_in_lambda(lambda_venv, f"EVENT = {str(event)!r}\n" + MAINTENANCE_DRIVER, env)
    assert run.returncode == 0, run.stderr[-4000:]
    result = json.loads(run.stdout.split("RESULT ", 1)[1].splitlines()[0])
    assert (result["files_before"], result["files_after"], result["commits"]) == (4, 1, 1)
    assert _imported_trimmed(run.stdout) == []
    table.refresh()
    assert [t.file.record_count for t in table.scan().plan_files()] == [100]
    assert sorted(table.scan().to_arrow().column("transaction_id").to_pylist()) == expected
