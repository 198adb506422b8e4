-- Revenue, orders and units per category, largest first.
SELECT
    category,
    COUNT(*) AS orders,
    SUM(quantity) AS units,
    SUM(total_amount) AS revenue
FROM transactions
GROUP BY category
ORDER BY revenue DESC, category
