"""What ships: the code archive's contents, the layer recipe, and the layer pre-flight check."""

from __future__ import annotations

import json
import shutil
import zipfile
from dataclasses import asdict
from pathlib import Path

import pytest

from infra import layer as layer_build
from infra.layer import LayerManifest, LayerSpec, pip_command, requirements_digest, trim, write_zip
from infra.packaging import (
    LayerMissing,
    code_files,
    layer_artifact,
    resolve_layers,
    running_under_mocks,
    write_code_zip,
)

ROOT = Path(__file__).resolve().parents[2]


def test_code_archive_is_handlers_and_schemas_only(tmp_path: Path) -> None:
    files = code_files(ROOT)
    assert "handlers/transformer.py" in files and "schemas/transaction.py" in files
    # The maintenance function's entry point and the code it runs ship too.
    assert {"handlers/maintenance.py", "handlers/core/maintain.py", "schemas/iceberg.py"} <= set(
        files
    )
    assert {name.split("/")[0] for name in files} == {"handlers", "schemas"}
    # A polluted tree: caches, a test directory and editor files stay out.
    for package in ("handlers", "schemas"):
        shutil.copytree(ROOT / package, tmp_path / package)
    (tmp_path / "handlers" / "__pycache__").mkdir(exist_ok=True)
    (tmp_path / "handlers" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / "handlers" / "tests").mkdir()
    (tmp_path / "handlers" / "tests" / "test_x.py").write_text("")
    (tmp_path / "handlers" / ".notes.py").write_text("")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_y.py").write_text("")
    polluted = code_files(tmp_path)
    assert set(polluted) == set(files)
    size = write_code_zip(tmp_path, tmp_path / "code.zip")
    with zipfile.ZipFile(tmp_path / "code.zip") as zf:
        assert sorted(zf.namelist()) == sorted(files)
    assert 0 < size < 2 * 1024 * 1024


def test_platform_tags_follow_the_runtimes_glibc() -> None:
    py312 = LayerSpec("x86_64", "python3.12").platforms()
    assert py312[0] == "manylinux_2_34_x86_64"  # Amazon Linux 2023
    assert "manylinux_2_17_x86_64" in py312 and "manylinux2014_x86_64" in py312
    py311 = LayerSpec("arm64", "python3.11").platforms()
    assert py311[0] == "manylinux_2_26_aarch64"  # Amazon Linux 2
    assert "manylinux_2_28_aarch64" not in py311


def test_pip_fetches_wheels_for_lambda_not_for_this_machine(tmp_path: Path) -> None:
    command = pip_command(LayerSpec("arm64", "python3.12"), tmp_path / "t", tmp_path / "c")
    joined = " ".join(command)
    assert "--only-binary=:all:" in command
    assert "--python-version 3.12" in joined and "--implementation cp" in joined
    assert f"--target {tmp_path / 't'}" in joined
    assert f"-r {ROOT / 'requirements-lambda.txt'}" in joined
    assert f"-c {ROOT / 'constraints.txt'}" in joined
    assert "--platform manylinux_2_34_aarch64" in joined
    assert "--no-compile" in command


def test_bad_arch_or_runtime_is_refused() -> None:
    with pytest.raises(layer_build.LayerError, match="--arch"):
        LayerSpec("sparc", "python3.12")
    with pytest.raises(layer_build.LayerError, match="--runtime"):
        LayerSpec("x86_64", "python2.7")


def _tree(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def test_trim_drops_tests_sources_and_duplicate_libraries(tmp_path: Path) -> None:
    lib = b"\x7fELF" + b"x" * 100
    _tree(
        tmp_path,
        {
            "pandas/__init__.py": b"",
            "pandas/tests/test_a.py": b"x" * 10,
            "pandas/_testing/__init__.py": b"",  # imported by `import pandas`
            "numpy/_core/include/numpy/x.h": b"x",
            "pyarrow/lib.pyx": b"x",
            "pyarrow/__init__.pyi": b"x",
            "pyarrow/libarrow.so.2600": lib,
            "pyarrow/libarrow_python.so": lib,
            "pyarrow/libarrow_python.so.2600": lib,
            "pyarrow/libarrow_python.so.2600.1.0": lib,
            "pyarrow/libarrow_flight.so.2600": lib,
            "pyarrow/_flight.cpython-312-x86_64-linux-gnu.so": lib,
            "pyarrow/_parquet.cpython-312-x86_64-linux-gnu.so": lib,
            "pandas-3.1.1.dist-info/METADATA": b"x",
            "bin/some-script": b"#!/usr/bin/python",
        },
    )
    freed = trim(tmp_path)
    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert left == [
        "pandas-3.1.1.dist-info/METADATA",
        "pandas/__init__.py",
        "pandas/_testing/__init__.py",
        "pyarrow/_parquet.cpython-312-x86_64-linux-gnu.so",
        "pyarrow/libarrow.so.2600",
        "pyarrow/libarrow_python.so.2600",
    ]
    assert freed > 0


def test_trim_drops_what_no_function_path_imports(tmp_path: Path) -> None:
    _tree(
        tmp_path,
        {
            "zstandard/__init__.py": b"",
            "zstandard/backend_c.cpython-312-x86_64-linux-gnu.so": b"c",
            "zstandard/_cffi.cpython-312-x86_64-linux-gnu.so": b"x" * 50,
            "zstandard/backend_cffi.py": b"x",
            "pyiceberg/__init__.py": b"",
            "pyiceberg/cli/console.py": b"x",
            "pyiceberg/catalog/glue.py": b"",
            "pyiceberg/catalog/hive.py": b"x",
            "rich/__init__.py": b"x",
            "pygments/lexer.py": b"x",
            "click/core.py": b"x",
            "hive_metastore/ttypes.py": b"x",
            "botocore/data/s3/2006-03-01/service-2.json.gz": b"",
            "botocore/data/s3/2006-03-01/examples-1.json": b"x",
            "pyarrow/_orc.cpython-312-x86_64-linux-gnu.so": b"x",
            "pyarrow/_s3fs.cpython-312-x86_64-linux-gnu.so": b"",
        },
    )
    freed = trim(tmp_path)
    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert left == [
        "botocore/data/s3/2006-03-01/service-2.json.gz",
        "pyarrow/_s3fs.cpython-312-x86_64-linux-gnu.so",
        "pyiceberg/__init__.py",
        "pyiceberg/catalog/glue.py",
        "zstandard/__init__.py",
        "zstandard/backend_c.cpython-312-x86_64-linux-gnu.so",
    ]
    assert freed == 50 + 9


def test_zip_is_byte_for_byte_reproducible(tmp_path: Path) -> None:
    _tree(tmp_path / "t", {"python/b.py": b"b", "python/a/x.so": b"\x7fELF", "python/c.py": b"c"})
    (tmp_path / "t" / "python" / "a" / "x.so").chmod(0o755)
    write_zip(tmp_path / "t", tmp_path / "one.zip")
    (tmp_path / "t" / "python" / "b.py").touch()  # a newer mtime changes nothing
    write_zip(tmp_path / "t", tmp_path / "two.zip")
    assert (tmp_path / "one.zip").read_bytes() == (tmp_path / "two.zip").read_bytes()
    with zipfile.ZipFile(tmp_path / "one.zip") as zf:
        assert zf.namelist() == ["python/a/x.so", "python/b.py", "python/c.py"]
        assert zf.getinfo("python/a/x.so").external_attr >> 16 == 0o100755


def _fake_build(root: Path, arch: str, runtime: str, *, digest: str | None = None) -> Path:
    """A layer zip plus manifest as `make layer` leaves them, without downloading anything."""
    for name in ("requirements-lambda.txt", "constraints.txt"):
        shutil.copy(ROOT / name, root / name)
    zip_path = layer_build.layer_zip_path(root, arch)
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path, "w") as zf:
        zf.writestr("python/x.py", "")
    manifest = LayerManifest(
        arch=arch,
        runtime=runtime,
        requirements_sha256=digest or requirements_digest(root, runtime, arch),
        zip_sha256=layer_build.sha256_of(zip_path),
        zip_bytes=zip_path.stat().st_size,
        unzipped_bytes=0,
        files=1,
        trimmed_bytes=0,
    )
    zip_path.with_suffix(".json").write_text(json.dumps(asdict(manifest)))
    return zip_path


def test_missing_layer_tells_the_user_to_run_make_layer(tmp_path: Path) -> None:
    zip_path = layer_build.layer_zip_path(tmp_path, "arm64")
    with pytest.raises(LayerMissing) as caught:
        layer_artifact(tmp_path, zip_path, arch="arm64", runtime="python3.12")
    assert str(caught.value) == (
        f"Lambda layer {zip_path} is missing: run `make layer ARCH=arm64 RUNTIME=python3.12` first"
    )


def test_a_built_layer_is_accepted_and_hashed(tmp_path: Path) -> None:
    zip_path = _fake_build(tmp_path, "x86_64", "python3.12")
    artifact = layer_artifact(tmp_path, zip_path, arch="x86_64", runtime="python3.12")
    assert artifact.sha256 == layer_build.sha256_of(zip_path)
    assert artifact.built


def test_a_stale_or_mismatched_layer_is_refused(tmp_path: Path) -> None:
    zip_path = _fake_build(tmp_path, "x86_64", "python3.12", digest="0" * 64)
    with pytest.raises(LayerMissing, match="is stale"):
        layer_artifact(tmp_path, zip_path, arch="x86_64", runtime="python3.12")
    zip_path = _fake_build(tmp_path, "x86_64", "python3.11")
    with pytest.raises(LayerMissing, match=r"built for python3\.11/x86_64"):
        layer_artifact(tmp_path, zip_path, arch="x86_64", runtime="python3.12")
    zip_path = _fake_build(tmp_path, "x86_64", "python3.12")
    zip_path.write_bytes(b"tampered")
    with pytest.raises(LayerMissing, match="does not match its manifest"):
        layer_artifact(tmp_path, zip_path, arch="x86_64", runtime="python3.12")


def test_outside_unit_test_mocks_a_missing_layer_stops_the_program(tmp_path: Path) -> None:
    assert not running_under_mocks()
    zips = {"arm64": layer_build.layer_zip_path(tmp_path, "arm64")}
    with pytest.raises(LayerMissing, match="make layer ARCH=arm64"):
        resolve_layers(tmp_path, zips, runtime="python3.12")


def test_pins_are_part_of_the_layer_fingerprint(tmp_path: Path) -> None:
    for name in ("requirements-lambda.txt", "constraints.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    before = requirements_digest(tmp_path, "python3.12", "x86_64")
    assert before != requirements_digest(tmp_path, "python3.12", "arm64")
    assert before != requirements_digest(tmp_path, "python3.13", "x86_64")
    with (tmp_path / "constraints.txt").open("a") as handle:
        handle.write("extra==1.0\n")
    assert before != requirements_digest(tmp_path, "python3.12", "x86_64")
