"""Local runner and CLI: the Lambdas' code against a directory lake, DuckDB for Athena."""
