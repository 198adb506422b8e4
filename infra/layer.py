"""Build the Lambda dependency layer reproducibly from the exact pins: `make layer`."""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ("requirements-lambda.txt", "constraints.txt")

# Highest glibc of each Lambda runtime's OS: python3.11 runs on Amazon Linux 2
# (glibc 2.26), python3.12 and later on Amazon Linux 2023 (glibc 2.34).
RUNTIME_GLIBC: dict[str, tuple[int, int]] = {
    "python3.11": (2, 26),
    "python3.12": (2, 34),
    "python3.13": (2, 34),
}
ARCHITECTURES: dict[str, str] = {"x86_64": "x86_64", "arm64": "aarch64"}

# Lambda's hard limit: function code plus all its layers, unzipped (250 MiB).
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024

# Directories never imported at run time: test suites, C headers, bundled
# benchmarks. `testing`/`_testing` stay: pandas imports them on `import pandas`.
_DROP_DIRS = frozenset({"tests", "test", "__pycache__", "include", "benchmarks"})
# Build-time sources and type stubs: nothing at run time reads them.
_DROP_SUFFIXES = (".pyc", ".pyo", ".pyx", ".pxd", ".pxi", ".pyi", ".c", ".cc", ".cpp", ".h", ".hpp")
# Arrow Flight (an RPC framework) and pyarrow's C++ test hooks: ~33 MiB nothing here
# imports. Nothing else links against them (checked with `readelf -d`).
_DROP_FILES = (
    re.compile(r"^lib(arrow_flight|arrow_python_flight)\.so(\.\d+)*$"),
    re.compile(r"^_flight\.cpython-.+\.so$"),
    re.compile(r"^_pyarrow_cpp_tests\.cpython-.+\.so$"),
)
# Whole packages and modules no function path imports (the layer-only venv test runs the
# generator, the transformer and the maintenance handler without them, and checks they are
# gone). Paths relative to the layer's python/ directory.
UNUSED_ON_FUNCTION_PATHS: dict[str, str] = {
    # zstandard ships two backends; the C extension loads first, the cffi one is a fallback.
    "zstandard/_cffi.*.so": "zstandard's cffi backend (11.6 MiB)",
    "zstandard/backend_cffi.py": "zstandard's cffi backend",
    # pyiceberg's `pyiceberg` console command and what only it imports.
    "pyiceberg/cli": "pyiceberg's CLI",
    "rich": "pyiceberg CLI output",
    "pygments": "syntax highlighting for rich",
    "markdown_it": "markdown for rich",
    "mdurl": "markdown for rich",
    "click": "pyiceberg CLI",
    # Thrift client of pyiceberg's Hive catalog; the functions use Glue.
    "hive_metastore": "pyiceberg's Hive catalog",
    "pyiceberg/catalog/hive.py": "pyiceberg's Hive catalog",
    "pandera/_cli": "pandera's command line",
    # Request/response examples for API documentation; botocore never loads them to run.
    "botocore/data/*/*/examples-1.json": "botocore API doc examples (1.6 MiB)",
    # numpy's Fortran wrapper generator (a build tool, imported only on demand).
    "numpy/f2py": "numpy's Fortran wrapper generator",
    # Powertools' API Gateway/ALB routers; the functions use its metrics only.
    "aws_lambda_powertools/event_handler": "Powertools HTTP routers (2.1 MiB)",
    # pyarrow filesystems and formats nobody here reads: HDFS, GCS, Azure, ORC, Substrait.
    "pyarrow/_hdfs.*.so": "pyarrow HDFS",
    "pyarrow/_gcsfs.*.so": "pyarrow GCS",
    "pyarrow/_azurefs.*.so": "pyarrow Azure",
    "pyarrow/_orc.*.so": "pyarrow ORC",
    "pyarrow/_dataset_orc.*.so": "pyarrow ORC datasets",
    "pyarrow/_substrait.*.so": "pyarrow Substrait plans",
}
# Modules the trim removes: the layer-only venv test checks none of them imports.
TRIMMED_MODULES = (
    "zstandard.backend_cffi",
    "pyiceberg.cli",
    "rich",
    "pygments",
    "click",
    "hive_metastore",
    "numpy.f2py",
    "aws_lambda_powertools.event_handler",
    "pyarrow._orc",
)
# Wheels cannot hold symlinks, so `libX.so`, `libX.so.N` and `libX.so.N.M.P` arrive
# as three identical copies; the loader only asks for the SONAME, `libX.so.N`.
_SHARED_LIBRARY = re.compile(r"^(lib.+\.so)((\.\d+)*)$")
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


class LayerError(RuntimeError):
    """The layer could not be built or does not fit Lambda's limits."""


@dataclass(frozen=True)
class LayerSpec:
    """What to build: one architecture and runtime, from this repo's pins."""

    arch: str
    runtime: str
    root: Path = ROOT
    output: Path | None = None

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise LayerError(f"--arch must be one of {sorted(ARCHITECTURES)}, got {self.arch!r}")
        if self.runtime not in RUNTIME_GLIBC:
            raise LayerError(
                f"--runtime must be one of {sorted(RUNTIME_GLIBC)}, got {self.runtime!r}"
            )

    @property
    def zip_path(self) -> Path:
        return self.output or layer_zip_path(self.root, self.arch)

    @property
    def manifest_path(self) -> Path:
        return manifest_path_for(self.zip_path)

    @property
    def work_dir(self) -> Path:
        return self.zip_path.with_suffix("")

    @property
    def python_version(self) -> str:
        return self.runtime.removeprefix("python")

    def platforms(self) -> list[str]:
        """Every manylinux tag the runtime's glibc can load, newest first."""
        machine = ARCHITECTURES[self.arch]
        major, minor = RUNTIME_GLIBC[self.runtime]
        tags = [f"manylinux_{major}_{m}_{machine}" for m in range(minor, 16, -1)]
        return [*tags, f"manylinux2014_{machine}"]


@dataclass(frozen=True)
class LayerManifest:
    """Written beside the zip: what was built, from which pins, and how big it is."""

    arch: str
    runtime: str
    requirements_sha256: str
    zip_sha256: str
    zip_bytes: int
    unzipped_bytes: int
    files: int
    trimmed_bytes: int

    @property
    def zip_sha256_base64(self) -> str:
        """The form Lambda's `source_code_hash` and CodeSha256 use."""
        return base64.b64encode(bytes.fromhex(self.zip_sha256)).decode()

    @classmethod
    def read(cls, path: Path) -> LayerManifest:
        return cls(**json.loads(path.read_text()))


def layer_zip_path(root: Path, arch: str) -> Path:
    """Where `make layer ARCH=<arch>` puts the layer and the program looks for it."""
    return root / "build" / f"layer-{arch}.zip"


def manifest_path_for(zip_path: Path) -> Path:
    return zip_path.with_suffix(".json")


def requirements_digest(root: Path, runtime: str, arch: str) -> str:
    """Fingerprint of everything that decides the layer's contents."""
    digest = hashlib.sha256()
    for name in REQUIREMENTS:
        digest.update(name.encode())
        digest.update((root / name).read_bytes())
    # The recipe itself (this file): a change to trimming or zipping makes old builds stale.
    digest.update(Path(__file__).read_bytes())
    digest.update(f"{runtime}|{arch}".encode())
    return digest.hexdigest()


def pip_command(spec: LayerSpec, target: Path, cache: Path) -> list[str]:
    """pip, told to fetch wheels for Lambda's platform rather than this machine's."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--quiet",
        "--no-compile",  # .pyc files carry timestamps; Lambda compiles at cold start
        "--only-binary=:all:",  # never build from source for the wrong platform
        "--implementation",
        "cp",
        "--python-version",
        spec.python_version,
        "--target",
        str(target),
        "--cache-dir",
        str(cache),
        "-r",
        str(spec.root / "requirements-lambda.txt"),
        "-c",
        str(spec.root / "constraints.txt"),
    ]
    for platform in spec.platforms():
        command += ["--platform", platform]
    return command


def trim(site: Path) -> int:
    """Delete what nothing imports at run time; return the bytes freed."""
    freed = 0
    # Walk bottom-up so a dropped directory is removed after its contents are counted.
    for path in sorted(site.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_symlink() or not path.exists():
            continue
        in_dist_info = any(part.endswith(".dist-info") for part in path.parts)
        if path.is_dir() and path.name in _DROP_DIRS and not in_dist_info:
            freed += sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            shutil.rmtree(path)
        elif path.is_file() and (
            path.name.endswith(_DROP_SUFFIXES) or any(p.match(path.name) for p in _DROP_FILES)
        ):
            freed += path.stat().st_size
            path.unlink()
    freed += _drop_duplicate_libraries(site)
    freed += _drop_unused(site)
    # pip's `bin/` holds console scripts with this machine's interpreter path in them.
    scripts = site / "bin"
    if scripts.is_dir():
        freed += sum(f.stat().st_size for f in scripts.rglob("*") if f.is_file())
        shutil.rmtree(scripts)
    return freed


def _drop_unused(site: Path) -> int:
    freed = 0
    for pattern in UNUSED_ON_FUNCTION_PATHS:
        for path in sorted(site.glob(pattern)):
            if path.is_dir():
                freed += sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
                shutil.rmtree(path)
            elif path.is_file():
                freed += path.stat().st_size
                path.unlink()
    return freed


def _drop_duplicate_libraries(site: Path) -> int:
    freed = 0
    groups: dict[tuple[Path, str], list[Path]] = {}
    for path in site.rglob("*.so*"):
        match = _SHARED_LIBRARY.match(path.name)
        if match and path.is_file():
            groups.setdefault((path.parent, match.group(1)), []).append(path)
    for paths in groups.values():
        sonames = [p for p in paths if re.search(r"\.so\.\d+$", p.name)]
        if len(paths) < 2 or len(sonames) != 1:
            continue
        keep = sonames[0].read_bytes()
        for path in paths:
            if path != sonames[0] and path.read_bytes() == keep:
                freed += path.stat().st_size
                path.unlink()
    return freed


def write_zip(tree: Path, zip_path: Path) -> tuple[int, int]:
    """Zip `tree` byte-for-byte reproducibly; return (file count, unzipped bytes)."""
    files = sorted(p for p in tree.rglob("*") if p.is_file())
    total = 0
    tmp = zip_path.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(tree).as_posix(), date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            # Fixed modes: executables keep their bit (shared libraries need it on some loaders).
            mode = 0o755 if os.access(path, os.X_OK) else 0o644
            info.external_attr = (0o100000 | mode) << 16
            data = path.read_bytes()
            total += len(data)
            zf.writestr(info, data, compresslevel=9)
    tmp.replace(zip_path)
    return len(files), total


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_current(spec: LayerSpec) -> bool:
    """True when the zip exists and was built from the current pins and recipe."""
    if not (spec.zip_path.is_file() and spec.manifest_path.is_file()):
        return False
    try:
        manifest = LayerManifest.read(spec.manifest_path)
    except (ValueError, TypeError):
        return False
    return manifest.requirements_sha256 == requirements_digest(
        spec.root, spec.runtime, spec.arch
    ) and manifest.zip_sha256 == sha256_of(spec.zip_path)


def build(spec: LayerSpec, *, force: bool = False, log=print) -> LayerManifest:
    """Build the layer zip and its manifest; reuse an up-to-date build unless forced."""
    if not force and is_current(spec):
        log(f"layer up to date: {spec.zip_path}")
        return LayerManifest.read(spec.manifest_path)
    spec.zip_path.parent.mkdir(parents=True, exist_ok=True)
    tree = spec.work_dir
    if tree.exists():
        shutil.rmtree(tree)
    # Lambda puts a layer's `python/` directory on sys.path.
    site = tree / "python"
    site.mkdir(parents=True)
    cache = spec.root / "build" / "pip-cache"
    log(f"installing pinned wheels for {spec.runtime} on {spec.arch} into {site}")
    result = subprocess.run(  # noqa: S603 - argv built here, no shell, no user input
        pip_command(spec, site, cache), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise LayerError(f"pip failed for {spec.runtime}/{spec.arch}:\n{result.stderr.strip()}")
    trimmed = trim(site)
    files, unzipped = write_zip(tree, spec.zip_path)
    shutil.rmtree(tree)  # the zip is the artefact; the unpacked copy is 200+ MiB of disk
    manifest = LayerManifest(
        arch=spec.arch,
        runtime=spec.runtime,
        requirements_sha256=requirements_digest(spec.root, spec.runtime, spec.arch),
        zip_sha256=sha256_of(spec.zip_path),
        zip_bytes=spec.zip_path.stat().st_size,
        unzipped_bytes=unzipped,
        files=files,
        trimmed_bytes=trimmed,
    )
    if unzipped >= LAMBDA_UNZIPPED_LIMIT:
        spec.zip_path.unlink()
        raise LayerError(
            f"layer is {unzipped / 2**20:.1f} MiB unzipped; Lambda allows "
            f"{LAMBDA_UNZIPPED_LIMIT / 2**20:.0f} MiB for code and layers together"
        )
    spec.manifest_path.write_text(json.dumps(asdict(manifest), indent=2) + "\n")
    log(
        f"built {spec.zip_path}: {manifest.zip_bytes / 2**20:.1f} MiB zipped, "
        f"{unzipped / 2**20:.1f} MiB unzipped, {files} files "
        f"({trimmed / 2**20:.1f} MiB trimmed)"
    )
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.layer", description=__doc__)
    parser.add_argument("--arch", default="x86_64", choices=sorted(ARCHITECTURES))
    parser.add_argument("--runtime", default="python3.12", choices=sorted(RUNTIME_GLIBC))
    parser.add_argument("--output", type=Path, help="zip path (default build/layer-<arch>.zip)")
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = parser.parse_args(argv)
    try:
        build(LayerSpec(args.arch, args.runtime, output=args.output), force=args.force)
    except LayerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
