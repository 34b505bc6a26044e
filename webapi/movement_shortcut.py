"""Plain stock movements answered before Flask.

Through Flask, ``POST /api/v1/stock-movements`` spends most of its CPU on what surrounds the
movement: the request context, Flask-Limiter's hooks (the route has no limit), webargs and
flask-smorest, a transient ``User``. This WSGI middleware applies a plainly valid movement
itself, with the functions the Flask path calls:

- the caller cleared by ``early_auth`` (the app's memo of verified tokens, then one
  ``AuthCache.lookup`` MGET that also reads the user's cached warehouse assignments, as the
  view's ``@read_ahead(assignment_keys)`` does);
- the body parsed by webargs' ``parse_json`` and loaded by ``plainly_valid_movement`` (what
  ``MovementCreate`` loads for such a body), the key checked by ``idempotency.checked_key``;
- admins, or users assigned to every warehouse involved (``visibility.unassigned``);
- ``models.stock.move_stock`` (one autocommitted statement; a replay comes back from it);
- the 201 answer of ``stock.created_answer``, the request counted in the metrics and the
  writer remembered for replica reads (``replicas.remember_write``) like any write.

Anything else goes to Flask, which stays the one place that refuses: another method, path or
query string (``?async=true``), a body that is not small plain JSON with a Content-Length, an
invalid key, no or a bad token, a caller ``early_auth`` does not clear, an assignment entry
not in Redis or not current, a warehouse the caller is not assigned to, and every refusal
of the ledger (short stock, unknown ids, a key reused with another body): nothing was
changed, and Flask runs the movement again and answers the refusal. A database error is
answered by Flask's error handlers without running the movement again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import Flask
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.routing import Rule

from models.stock import MovementRequest, StockError, move_stock
from webapi.early_auth import Caller, EarlyAuth, user_id_of
from webapi.idempotency import checked_key
from webapi.metrics import record_request
from webapi.plain_posts import EndpointRule, WsgiApp, flask_error_answer, plain_json_body
from webapi.problems import Problem
from webapi.replicas import remember_write
from webapi.services import EXTENSION_KEY, Services
from webapi.stock import created_answer
from webapi.stock_schemas import plainly_valid_movement
from webapi.visibility import assignment_cache, unassigned

PATH = "/api/v1/stock-movements"
ENDPOINT = "stock.create_movement"
CREATED = "201 CREATED"


class MovementShortcut:
    """Applies plainly valid movements of cleared callers; everything else to Flask."""

    def __init__(self, app: Flask, wsgi_app: WsgiApp) -> None:
        self._app = app
        self.wsgi_app = wsgi_app
        self.auth = EarlyAuth(app)
        self._rule = EndpointRule(app, ENDPOINT)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST" or environ.get("PATH_INFO") != PATH:
            return self.wsgi_app(environ, start_response)
        prepared = self._prepare(environ)
        if prepared is None:
            return self.wsgi_app(environ, start_response)
        svc, rule, caller, movement, key = prepared
        try:
            applied = move_stock(svc.db.primary, movement, caller.user_id, idempotency_key=key)
        except StockError:
            return self.wsgi_app(environ, start_response)  # refused, nothing changed
        except SQLAlchemyError as error:
            return flask_error_answer(self._app, environ, start_response, error)
        body, headers = created_answer(self._app, applied)
        headers += [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        remember_write(svc, caller.user_id)
        record_request(self._app, environ, "POST", rule, 201)
        start_response(CREATED, headers)
        return [body]

    def _prepare(
        self, environ: dict[str, Any]
    ) -> tuple[Services, Rule, Caller, MovementRequest, str | None] | None:
        """Everything the movement needs, if the request is plain and its caller may make
        it; None leaves the request to Flask."""
        svc: Services = self._app.extensions[EXTENSION_KEY]
        if environ.get("QUERY_STRING") or not self.auth.usable(svc):
            return None
        try:
            key = checked_key(environ.get("HTTP_IDEMPOTENCY_KEY"))
        except Problem:
            return None
        claims = self.auth.claims(environ)
        user_id = user_id_of(claims) if claims is not None else None
        if claims is None or user_id is None:
            return None
        rule = self._rule.matched(environ)
        if rule is None:
            return None
        movement = plainly_valid_movement(plain_json_body(self._app, environ))
        if movement is None:
            return None
        assignments = assignment_cache(svc)
        keys = assignments.keys(user_id)
        caller = self.auth.clear(svc, claims, keys)
        if caller is None:
            return None
        if caller.is_admin:
            visible = None
        else:
            visible = assignments.current_ids(*(caller.read.ahead.get(k) for k in keys))
            if visible is None:  # not cached (or stale): Flask reads the database
                return None
        if unassigned(visible, movement.warehouse_ids):
            return None
        return svc, rule, caller, movement, key
