-- The ten products with the most revenue.
SELECT
    product_id,
    product_name,
    SUM(quantity) AS units,
    SUM(total_amount) AS revenue
FROM transactions
GROUP BY product_id, product_name
ORDER BY revenue DESC, product_id
LIMIT 10
