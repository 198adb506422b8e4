"""Pure parts of maintenance: bin planning, settings validation, URI to key mapping."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from handlers.core.errors import ConfigError
from handlers.core.maintain import MB, MaintainSettings, object_key, plan_bins
from handlers.core.storage import LocalStorage, S3Storage


@dataclass(frozen=True)
class FakeFile:
    file_path: str
    file_size_in_bytes: int


def test_small_files_are_packed_up_to_the_target_and_big_ones_stay() -> None:
    files = [FakeFile(f"f{n:02d}", 30 * MB) for n in range(10)] + [FakeFile("big", 100 * MB)]
    bins = plan_bins(files, 128 * MB)  # type: ignore[arg-type]
    packed = [f.file_path for b in bins for f in b]
    assert "big" not in packed  # 100 MB is past 3/4 of 128 MB: left alone
    assert sorted(packed) == [f"f{n:02d}" for n in range(10)]
    assert all(sum(f.file_size_in_bytes for f in b) <= 128 * MB for b in bins)
    assert [len(b) for b in bins] == [4, 4, 2]


def test_a_lone_small_file_is_not_rewritten() -> None:
    assert plan_bins([FakeFile("a", MB), FakeFile("b", 200 * MB)], 128 * MB) == []  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"target_file_mb": 0}, "target_file_mb"),
        ({"target_file_mb": 5000}, "target_file_mb"),
        ({"snapshot_retention_hours": 0}, "snapshot_retention_hours"),
        ({"snapshot_retention_hours": -1}, "snapshot_retention_hours"),
        ({"orphan_min_age_hours": 0.5}, "orphan_min_age_hours"),
    ],
)
def test_bad_settings_are_config_errors_naming_the_setting(
    kwargs: dict[str, float], key: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        MaintainSettings(**kwargs)  # type: ignore[arg-type]
    assert caught.value.key == key


def test_object_keys_of_table_uris(tmp_path: Path) -> None:
    local = LocalStorage(tmp_path / "my lake")
    uri = (tmp_path / "my lake" / "processed" / "data" / "x.parquet").as_uri()
    assert "%20" in uri
    assert object_key(local, uri) == "processed/data/x.parquet"
    assert object_key(local, "file:///elsewhere/processed/data/x.parquet") is None
    s3 = S3Storage("bkt")
    assert object_key(s3, "s3://bkt/processed/metadata/m.avro") == "processed/metadata/m.avro"
    assert object_key(s3, "s3://other/processed/metadata/m.avro") is None
