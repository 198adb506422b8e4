"""Product catalog shared by the generator and the data contract."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class Product:
    """One sellable item with its list price."""

    product_id: str
    name: str
    category: str
    list_price: Decimal


# (category, [(name, list price)]) — ids are derived so they stay stable when
# a product is appended to the end of a category.
_CATALOG: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    (
        "Electronics",
        (
            ("Wireless Earbuds", "79.99"),
            ("4K Monitor 27in", "329.00"),
            ("USB-C Charger 65W", "39.95"),
            ("Mechanical Keyboard", "119.50"),
            ("Noise Cancelling Headphones", "249.99"),
            ("Portable SSD 1TB", "109.00"),
        ),
    ),
    (
        "Books",
        (
            ("Designing Data-Intensive Applications", "44.99"),
            ("The Pragmatic Programmer", "39.99"),
            ("Fluent Python", "59.99"),
            ("Cookbook for Busy Weeknights", "24.50"),
            ("Children's Picture Atlas", "18.75"),
        ),
    ),
    (
        "Home & Kitchen",
        (
            ("Chef's Knife 8in", "64.00"),
            ("Cast Iron Skillet", "34.99"),
            ("Pour-Over Coffee Kettle", "49.90"),
            ("Linen Duvet Cover", "129.00"),
            ("Glass Storage Set", "27.49"),
        ),
    ),
    (
        "Clothing",
        (
            ("Merino Wool Sweater", "89.00"),
            ("Running Shorts", "29.99"),
            ("Rain Jacket", "149.00"),
            ("Cotton T-Shirt 3-Pack", "24.99"),
            ("Leather Belt", "39.00"),
        ),
    ),
    (
        "Sports & Outdoors",
        (
            ("Yoga Mat", "32.00"),
            ("Trail Running Shoes", "134.95"),
            ("Insulated Water Bottle", "24.00"),
            ("Two-Person Tent", "219.00"),
            ("Adjustable Dumbbells", "299.99"),
        ),
    ),
    (
        "Beauty",
        (
            ("Vitamin C Serum", "28.00"),
            ("Mineral Sunscreen SPF 50", "19.99"),
            ("Bamboo Hair Brush", "12.49"),
            ("Unscented Moisturiser", "16.50"),
        ),
    ),
    (
        "Toys & Games",
        (
            ("Wooden Building Blocks", "42.00"),
            ("Strategy Board Game", "54.99"),
            ("1000-Piece Jigsaw", "21.99"),
            ("Remote Control Car", "69.95"),
        ),
    ),
    (
        "Grocery",
        (
            ("Single-Origin Coffee Beans 1kg", "32.50"),
            ("Extra Virgin Olive Oil 1L", "17.95"),
            ("Dark Chocolate Bar 6-Pack", "14.99"),
            ("Loose Leaf Green Tea", "11.25"),
        ),
    ),
)

CATEGORIES: tuple[str, ...] = tuple(category for category, _ in _CATALOG)

PRODUCTS: tuple[Product, ...] = tuple(
    Product(
        product_id=f"P{c_index + 1:02d}{p_index + 1:03d}",
        name=name,
        category=category,
        list_price=Decimal(price),
    )
    for c_index, (category, items) in enumerate(_CATALOG)
    for p_index, (name, price) in enumerate(items)
)

PRODUCTS_BY_ID: dict[str, Product] = {p.product_id: p for p in PRODUCTS}
