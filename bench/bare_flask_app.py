"""The baseline of ``api_throughput.py``: a bare Flask app serving a 50-item JSON list shaped
like a page of products (serialised on every request, as any JSON API would)."""

from __future__ import annotations

from flask import Flask, jsonify

ITEMS = [
    {
        "id": number,
        "owner_id": 1,
        "sku": f"SKU-{number}",
        "name": f"Product {number}",
        "description": None,
        "price": "19.99",
        "currency": "EUR",
        "created_at": "2020-01-01T00:00:00+00:00",
        "updated_at": "2020-01-01T00:00:00+00:00",
        "archived_at": None,
    }
    for number in range(1, 51)
]

app = Flask(__name__)


@app.get("/api/v1/products")
def products() -> object:
    return jsonify(items=ITEMS, next_cursor="opaque")
