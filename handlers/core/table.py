"""Where the Iceberg table lives: the catalog for a lake (SQLite locally, Glue in AWS)."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Mapping
from contextlib import suppress
from typing import TYPE_CHECKING

from handlers.core.errors import ConfigError, PipelineError
from handlers.core.storage import STATE_PREFIX, LocalStorage, S3Storage, Storage
from schemas.iceberg import NAMESPACE, TABLE_NAME, TABLE_PREFIX

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

# Locally: pyiceberg's SQL catalog on SQLite, inside the lake, so any pyiceberg user can open
# it: SqlCatalog("local", uri=f"sqlite:///{lake}/_catalog/catalog.db", warehouse=f"file://{lake}")
CATALOG_DB = "_catalog/catalog.db"
# In AWS: the stack's Glue database (set on the functions by infra/functions.py).
GLUE_DATABASE_ENV = "GLUE_DATABASE"
TABLE_NAME_ENV = "ICEBERG_TABLE"
# For tests against a moto server: a SQL catalog URI to use instead of Glue for an S3 lake.
CATALOG_URI_ENV = "ICEBERG_CATALOG_URI"


def table_identifier(environ: Mapping[str, str] | None = None, *, local: bool) -> str:
    """`namespace.table`: `ecommerce.transactions` locally, `<glue db>.transactions` in AWS."""
    env = os.environ if environ is None else environ
    name = env.get(TABLE_NAME_ENV) or TABLE_NAME
    if local:
        return f"{NAMESPACE}.{name}"
    database = env.get(GLUE_DATABASE_ENV, "")
    if not database and not env.get(CATALOG_URI_ENV):
        raise ConfigError(GLUE_DATABASE_ENV, "not set: the Glue database that holds the table")
    return f"{database or NAMESPACE}.{name}"


def table_location(storage: Storage) -> str:
    """URI of the table's root (`processed/` of the lake or bucket)."""
    if isinstance(storage, LocalStorage):
        return f"{storage.root.as_uri()}/{TABLE_PREFIX}"
    if isinstance(storage, S3Storage):
        return f"s3://{storage.bucket}/{TABLE_PREFIX}"
    raise ConfigError("lake", f"no Iceberg catalog for storage {storage.url}")


def _s3_properties(environ: Mapping[str, str]) -> dict[str, str]:
    # pyiceberg's FileIO does not read AWS_ENDPOINT_URL itself; a moto server needs it.
    endpoint = environ.get("AWS_ENDPOINT_URL", "")
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or ""
    props = {"s3.endpoint": endpoint} if endpoint else {}
    if region:
        props["s3.region"] = region
        props["glue.region"] = region
    return props


# What the pre-Iceberg layout left: Hive-partitioned Parquet right under processed/, and the
# per-source manifests that listed it (those only count while the table has no metadata).
LEGACY_DATA_PREFIX = f"{TABLE_PREFIX}/year="
LEGACY_MANIFEST_PREFIX = f"{STATE_PREFIX}manifests/"
TABLE_METADATA_PREFIX = f"{TABLE_PREFIX}/metadata/"


class LegacyLayoutError(PipelineError):
    """The lake holds files of the pre-Iceberg layout, which the table cannot adopt."""

    def __init__(self, lake: str, found: str) -> None:
        super().__init__(
            f"{lake} holds {found} files from the pre-Iceberg layout; move them aside "
            f"(mv {lake}/{TABLE_PREFIX} {lake}/{TABLE_PREFIX}.old; mv {lake}/_state "
            f"{lake}/_state.old; in a bucket: aws s3 mv --recursive) or start a new lake"
        )
        self.lake = lake
        self.found = found


def _holds(storage: Storage, prefix: str) -> bool:
    if isinstance(storage, LocalStorage):
        # A glob, not storage.list: listing walks all of processed/ on a local lake.
        parent, _, stem = prefix.rpartition("/")
        return (
            any((storage.root / parent).glob(f"{stem}*"))
            if stem
            else any((storage.root / parent).glob("*"))
        )
    return next(iter(storage.list(prefix)), None) is not None


def legacy_layout(storage: Storage) -> str | None:
    """What of the pre-Iceberg layout `storage` holds (`processed/year=…`), or None."""
    if _holds(storage, LEGACY_DATA_PREFIX):
        return f"{LEGACY_DATA_PREFIX}…"
    if _holds(storage, LEGACY_MANIFEST_PREFIX) and not _holds(storage, TABLE_METADATA_PREFIX):
        return f"{LEGACY_MANIFEST_PREFIX}…"
    return None


def ensure_current_layout(storage: Storage) -> None:
    """Raise LegacyLayoutError when the lake was written by the pre-Iceberg layout."""
    found = legacy_layout(storage)
    if found is not None:
        raise LegacyLayoutError(storage.url, found)


def open_catalog(storage: Storage, environ: Mapping[str, str] | None = None) -> Catalog:
    """The catalog that holds `storage`'s table.

    A local lake: the SQL catalog at `<lake>/_catalog/catalog.db`, warehouse at the lake
    root. A bucket: the Glue catalog, or a SQL catalog when `ICEBERG_CATALOG_URI` is set
    (tests against moto).
    """
    env = os.environ if environ is None else environ
    if isinstance(storage, LocalStorage):
        from pyiceberg.catalog.sql import SqlCatalog

        (storage.root / CATALOG_DB).parent.mkdir(parents=True, exist_ok=True)
        return SqlCatalog(
            "local",
            # Concurrent local writers wait for SQLite's lock rather than fail at once.
            uri=f"sqlite:///{storage.root / CATALOG_DB}?timeout={SQLITE_BUSY_SECONDS}",
            warehouse=storage.root.as_uri(),
        )
    props = _s3_properties(env)
    uri = env.get(CATALOG_URI_ENV, "")
    if uri:
        from pyiceberg.catalog.sql import SqlCatalog

        return SqlCatalog("s3-sql", uri=uri, warehouse=table_location(storage), **props)
    from pyiceberg.catalog.glue import GlueCatalog

    return GlueCatalog("glue", **props)


def load_table(
    storage: Storage, environ: Mapping[str, str] | None = None, *, create: bool | None = None
) -> Table:
    """The lake's `transactions` table; created on first use locally (`make run` needs no set-up).

    In AWS the table is created by `pulumi up` and never here (`create` defaults to local only).
    Several processes opening a new local lake at once race to create the SQL catalog's
    tables and the table itself; the losers' errors are retried after a jittered pause.
    """
    ensure_current_layout(storage)
    env = os.environ if environ is None else environ
    try:
        from sqlalchemy.exc import IntegrityError, OperationalError
    except ImportError:  # the Lambda layer has no SQL catalog, hence no such race
        return _load_or_create(storage, env, create)
    for attempt in range(CREATE_ATTEMPTS):
        try:
            return _load_or_create(storage, env, create)
        except (OperationalError, IntegrityError):  # locked, or created by another first
            if attempt == CREATE_ATTEMPTS - 1:
                raise
            time.sleep(random.uniform(0.05, 0.2) * (attempt + 1))
    raise AssertionError("unreachable")


SQLITE_BUSY_SECONDS = 30
CREATE_ATTEMPTS = 5


def _load_or_create(storage: Storage, env: Mapping[str, str], create: bool | None) -> Table:
    from pyiceberg.exceptions import NamespaceAlreadyExistsError, NoSuchTableError

    from schemas.iceberg import TABLE_PROPERTIES, iceberg_partition_spec, iceberg_schema

    local = isinstance(storage, LocalStorage)
    catalog = open_catalog(storage, env)
    identifier = table_identifier(env, local=local)
    try:
        return catalog.load_table(identifier)
    except NoSuchTableError:
        allowed = (local or bool(env.get(CATALOG_URI_ENV))) if create is None else create
        if not allowed:
            raise
    namespace = identifier.rsplit(".", 1)[0]
    with suppress(NamespaceAlreadyExistsError):
        catalog.create_namespace(namespace)
    return catalog.create_table_if_not_exists(
        identifier,
        schema=iceberg_schema(),
        partition_spec=iceberg_partition_spec(),
        location=table_location(storage),
        properties=TABLE_PROPERTIES,
    )
