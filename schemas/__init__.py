"""The data contract and the product catalog: the single source of truth."""

from __future__ import annotations

from schemas.catalog import CATEGORIES, PRODUCTS, PRODUCTS_BY_ID, Product
from schemas.columns import OutputColumn, output_columns, processed_arrow_schema
from schemas.instants import INSTANT_TYPE, parse_instants, parsing_instants_with
from schemas.transaction import (
    DATAFRAME_CHECK_COLUMNS,
    FIELDS,
    SCHEMA_VERSION,
    Check,
    ContractSpec,
    FieldContract,
    Transaction,
    contract,
    contract_spec,
    input_arrow_schema,
    known_rules,
)

__all__ = [
    "CATEGORIES",
    "DATAFRAME_CHECK_COLUMNS",
    "FIELDS",
    "INSTANT_TYPE",
    "PRODUCTS",
    "PRODUCTS_BY_ID",
    "SCHEMA_VERSION",
    "Check",
    "ContractSpec",
    "FieldContract",
    "OutputColumn",
    "Product",
    "Transaction",
    "contract",
    "contract_spec",
    "input_arrow_schema",
    "known_rules",
    "output_columns",
    "parse_instants",
    "parsing_instants_with",
    "processed_arrow_schema",
]
