"""The data contract and the product catalog: the single source of truth."""

from __future__ import annotations

from schemas.catalog import CATEGORIES, PRODUCTS, PRODUCTS_BY_ID, Product
from schemas.transaction import (
    DATAFRAME_CHECK_COLUMNS,
    FIELDS,
    PARTITION_COLUMNS,
    SCHEMA_VERSION,
    Transaction,
    contract,
    contract_markdown,
    glue_columns,
    glue_partition_keys,
    input_arrow_schema,
    output_columns,
    parse_instants,
    processed_arrow_schema,
)

__all__ = [
    "CATEGORIES",
    "DATAFRAME_CHECK_COLUMNS",
    "FIELDS",
    "PARTITION_COLUMNS",
    "PRODUCTS",
    "PRODUCTS_BY_ID",
    "SCHEMA_VERSION",
    "Product",
    "Transaction",
    "contract",
    "contract_markdown",
    "glue_columns",
    "glue_partition_keys",
    "input_arrow_schema",
    "output_columns",
    "parse_instants",
    "processed_arrow_schema",
]
