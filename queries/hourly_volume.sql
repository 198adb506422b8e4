-- Orders and revenue per UTC hour.
SELECT
    year,
    month,
    day,
    hour,
    COUNT(*) AS orders,
    SUM(total_amount) AS revenue
FROM transactions
GROUP BY year, month, day, hour
ORDER BY year, month, day, hour
