-- Quarantine by rule, last 7 days: which column and check reject the most records.
-- Athena only (UNNEST of an array of rows, partition projection on dt).
SELECT
    err_column AS column_name,
    err_check AS check_name,
    count(*) AS failures,
    count(DISTINCT q.entry_id) AS records,
    count(DISTINCT q.source_key) AS source_files,
    min(q.quarantined_at) AS first_seen,
    max(q.quarantined_at) AS last_seen,
    arbitrary(err_value) AS example_value
FROM quarantine AS q
CROSS JOIN UNNEST(q.errors) AS e (err_column, err_check, err_value)
WHERE q.dt >= date_format(current_date - INTERVAL '7' DAY, '%Y-%m-%d')
GROUP BY err_column, err_check
ORDER BY failures DESC, column_name, check_name
