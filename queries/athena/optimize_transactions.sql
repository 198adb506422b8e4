-- Compact the Iceberg table's small files (Athena's alternative to the maintenance function).
-- Run in this stack's database; add WHERE year = … AND month = … to compact one partition.
OPTIMIZE transactions REWRITE DATA USING BIN_PACK
