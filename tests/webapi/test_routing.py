"""URL matching for answers given before Flask (``webapi.routing.match_route``)."""

from __future__ import annotations

from flask import Flask
from werkzeug.test import EnvironBuilder

from webapi.routing import match_route


def test_a_route_is_matched_as_flask_dispatches_it(app: Flask) -> None:
    environ = EnvironBuilder(path="/api/v1/products", query_string="limit=2").get_environ()
    matched = match_route(app, environ)
    assert matched is not None
    request, rule, view_args = matched
    assert rule.endpoint == "products.list_products"
    assert view_args == {}
    assert request.args["limit"] == "2"


def test_what_flask_answers_itself_is_not_matched(app: Flask) -> None:
    assert match_route(app, EnvironBuilder(path="/api/v1/nowhere").get_environ()) is None
    assert match_route(app, EnvironBuilder(path="/api/v1/products/x").get_environ()) is None


def test_matching_leaves_the_environ_as_it_was(app: Flask) -> None:
    """A request that put itself in its environ ("werkzeug.request") would make a reference
    cycle keeping the environ, and the server's request objects in it, alive until the
    garbage collector's next pass."""
    environ = EnvironBuilder(path="/api/v1/products").get_environ()
    before = dict(environ)
    assert match_route(app, environ) is not None
    assert environ == before
