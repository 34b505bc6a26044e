"""URL matching for answers given before Flask (``webapi.routing.match_route``)."""

from __future__ import annotations

from flask import Flask
from werkzeug.test import EnvironBuilder

from webapi.routing import RouteMemo, match_route


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


def test_the_memo_answers_as_match_route_does(app: Flask) -> None:
    memo = RouteMemo(app)
    for path in ("/api/v1/products", "/api/v1/products/7", "/api/v1/products/7", "/nowhere"):
        environ = EnvironBuilder(path=path).get_environ()
        matched = match_route(app, environ)
        expected = None if matched is None else (matched[1], matched[2])
        assert memo.rule_for(environ) == expected
    first = memo.rule_for(EnvironBuilder(path="/api/v1/products/7").get_environ())
    assert first is not None
    first[1]["product_id"] = 8  # the caller's copy: the memo keeps its own
    again = memo.rule_for(EnvironBuilder(path="/api/v1/products/7").get_environ())
    assert again is not None and again[1] == {"product_id": 7}


def test_the_memo_tells_methods_apart(app: Flask) -> None:
    memo = RouteMemo(app)
    get = memo.rule_for(EnvironBuilder(path="/api/v1/stock-movements").get_environ())
    post = memo.rule_for(
        EnvironBuilder(path="/api/v1/stock-movements", method="POST").get_environ()
    )
    assert get is not None and post is not None
    assert get[0].endpoint != post[0].endpoint


def test_the_memo_matches_every_request_when_the_host_matters(app: Flask) -> None:
    """With trusted hosts, a request's host decides whether Flask refuses it."""
    app.config["TRUSTED_HOSTS"] = ["good.example"]
    memo = RouteMemo(app)
    good = EnvironBuilder(path="/api/v1/products", base_url="http://good.example").get_environ()
    bad = EnvironBuilder(path="/api/v1/products", base_url="http://bad.example").get_environ()
    assert memo.rule_for(good) is not None
    assert memo.rule_for(bad) is None
    assert memo.rule_for(good) is not None
