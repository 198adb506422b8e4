"""What ships: the function code archive's file list and the layer pre-flight check."""

from __future__ import annotations

import base64
import zipfile
from dataclasses import dataclass
from pathlib import Path

from infra.layer import LayerManifest, manifest_path_for, requirements_digest, sha256_of

# The functions import only these packages; tests, infra and the pipeline CLI stay home.
CODE_PACKAGES = ("handlers", "schemas")
# Data files a package may read at run time; everything else in the tree is ignored.
CODE_SUFFIXES = (".py", ".json", ".typed")
_SKIP_DIRS = frozenset({"__pycache__", "tests", "test"})

# Stands in for the layer hash when unit tests run the program without a built layer.
UNBUILT_LAYER_HASH = "0" * 64


def code_files(root: Path) -> dict[str, Path]:
    """Archive path -> file for the function code; the same list the layer test installs."""
    files: dict[str, Path] = {}
    for package in CODE_PACKAGES:
        base = root / package
        if not (base / "__init__.py").is_file():
            raise FileNotFoundError(f"{base} is not a package; the functions need it")
        for path in sorted(base.rglob("*")):
            relative = path.relative_to(root)
            if not path.is_file() or _SKIP_DIRS.intersection(relative.parts):
                continue
            if path.name.startswith(".") or not path.name.endswith(CODE_SUFFIXES):
                continue
            files[relative.as_posix()] = path
    return files


def write_code_zip(root: Path, zip_path: Path) -> int:
    """The code archive as Lambda receives it (for the layer test); returns unzipped bytes."""
    total = 0
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, path in code_files(root).items():
            data = path.read_bytes()
            total += len(data)
            zf.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return total


@dataclass(frozen=True)
class LayerArtifact:
    """A built layer zip the program uploads, with the hash that versions it."""

    arch: str
    zip_path: Path
    sha256: str

    @property
    def sha256_base64(self) -> str:
        """The form Lambda's `source_code_hash` takes."""
        return base64.b64encode(bytes.fromhex(self.sha256)).decode()

    @property
    def built(self) -> bool:
        return self.sha256 != UNBUILT_LAYER_HASH


class LayerMissing(RuntimeError):
    """The layer zip is absent or stale: `make layer` fixes it."""


def layer_artifact(root: Path, zip_path: Path, *, arch: str, runtime: str) -> LayerArtifact:
    """Check a built layer matches the pins, arch and runtime; raise LayerMissing if not."""
    command = f"make layer ARCH={arch} RUNTIME={runtime}"
    manifest_path = manifest_path_for(zip_path)
    if not zip_path.is_file() or not manifest_path.is_file():
        raise LayerMissing(f"Lambda layer {zip_path} is missing: run `{command}` first")
    try:
        manifest = LayerManifest.read(manifest_path)
    except (ValueError, TypeError) as error:
        raise LayerMissing(f"{manifest_path} is unreadable ({error}): run `{command}`") from error
    if (manifest.arch, manifest.runtime) != (arch, runtime):
        raise LayerMissing(
            f"{zip_path} was built for {manifest.runtime}/{manifest.arch}, the stack needs "
            f"{runtime}/{arch}: run `{command}`"
        )
    if manifest.requirements_sha256 != requirements_digest(root, runtime, arch):
        raise LayerMissing(
            f"{zip_path} is stale (pins or build recipe changed since it was built): "
            f"run `{command}`"
        )
    if sha256_of(zip_path) != manifest.zip_sha256:
        raise LayerMissing(f"{zip_path} does not match its manifest: run `{command}`")
    return LayerArtifact(arch=arch, zip_path=zip_path, sha256=manifest.zip_sha256)


def unbuilt_layer(zip_path: Path, *, arch: str) -> LayerArtifact:
    """Placeholder for unit tests under Pulumi mocks, which never read the file."""
    return LayerArtifact(arch=arch, zip_path=zip_path, sha256=UNBUILT_LAYER_HASH)


def running_under_mocks() -> bool:
    """True inside Pulumi unit tests (`pulumi.runtime.set_mocks`), never under the CLI."""
    from pulumi.runtime.mocks import MockMonitor
    from pulumi.runtime.settings import get_monitor

    return isinstance(get_monitor(), MockMonitor)


def resolve_layers(root: Path, zips: dict[str, Path], *, runtime: str) -> dict[str, LayerArtifact]:
    """Built layers per architecture; a missing or stale one stops `pulumi up`/`preview`.

    Under unit-test mocks nothing is uploaded, so an unbuilt layer is allowed there.
    """
    mocked = running_under_mocks()
    artifacts = {}
    for arch, zip_path in sorted(zips.items()):
        try:
            artifacts[arch] = layer_artifact(root, zip_path, arch=arch, runtime=runtime)
        except LayerMissing:
            if not mocked:
                raise
            artifacts[arch] = unbuilt_layer(zip_path, arch=arch)
    return artifacts
