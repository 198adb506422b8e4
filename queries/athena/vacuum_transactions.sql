-- Expire old snapshots and remove files no snapshot references (Athena's VACUUM).
-- Athena keeps snapshots for the table's vacuum_max_snapshot_age_seconds (default 5 days).
VACUUM transactions
