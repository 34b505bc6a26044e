"""Cache hits of product reads, and misses of plain listing queries, answered before Flask.

Through Flask, a cached ``GET /api/v1/products`` pays for the request context, Flask-Limiter's
hooks, argument parsing and a transient ``User`` to send bytes that Redis already holds. This
WSGI middleware answers such a hit itself, with the same checks and the same one Redis round
trip, reusing the functions the Flask path calls:

- the access token verified by ``security.verified_access_token`` (the app's memo);
- one ``AuthCache.lookup`` MGET: the user's auth record, the token's revocation flag, the
  revocation copy's sentinel, and the entry's version and the entry themselves;
- the entry taken by ``VersionedCache.read`` from those values and answered like
  ``caching.json_response`` (ETag, If-None-Match → 304, Cache-Control);
- the answer counted in the request metrics like any other.

A miss (or every request when entries are off, TTL 0) of an endpoint that offers a ``render``
for its query (the products listing, for plain ``limit``/``order``/``owner_id``/``archived``/
``cursor`` values) is rendered by the function the view renders with and stored by
``read_through.render_and_store`` as the view stores it, from a replica or the primary as
``read_through.reads_primary`` tells from the replica flags read in the same MGET. A
database error leaves the request to Flask, whose answer (a 503 problem) is the one given.

Everything else falls through to Flask, which stays the one place that decides and refuses:
no or bad token, a user record not in Redis, a token revoked or that Redis cannot vouch for,
an inactive user, a token issued before the user's cut-off, an odd query or condition, a
miss it cannot render, Redis down (then Flask alone tries it for a second), rate limits set
for every route.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from flask import Flask
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.datastructures import MultiDict
from werkzeug.routing import Rule

from webapi.caching import CachedBody, CacheRead, VersionedCache, plain_get, wsgi_json_answer
from webapi.early_auth import EarlyAuth, user_id_of
from webapi.metrics import record_request
from webapi.read_through import read_connection, reads_primary, render_and_store
from webapi.routing import RouteMemo
from webapi.services import EXTENSION_KEY, Services

log = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Any], Iterable[bytes]]
Answer = tuple[str, list[tuple[str, str]], bytes]


@dataclass(frozen=True)
class CacheKeys:
    """The Redis keys of one cached read: the version it is tagged with, and the entry."""

    version: str
    entry: str


# (services, query arguments as sent, view arguments) -> the keys, or None when the view
# reads no plain entry for this request.
CacheKeysFinder = Callable[[Services, MultiDict[str, str], Mapping[str, Any]], CacheKeys | None]
# (services, user id) -> the keys of the replica flags the read checks (``read_through``).
FlagKeysFinder = Callable[[Services, int], list[str]]
# The body of a miss, read on an autocommit connection to the products' database.
Render = Callable[[Connection], bytes]
# (query arguments as sent, view arguments) -> how the view renders a miss of this request,
# or None when only the view may answer it.
MissRenderFinder = Callable[[MultiDict[str, str], Mapping[str, Any]], Render | None]


@dataclass(frozen=True)
class CachedRead:
    """What the shortcut needs to know of one cached read endpoint."""

    keys: CacheKeysFinder
    flag_keys: FlagKeysFinder
    miss_render: MissRenderFinder | None = None


@dataclass(frozen=True)
class _Route:
    rule: Rule
    keys: CacheKeys
    read: CachedRead
    render: Render | None


class CacheHitShortcut:
    """Answers GETs of the endpoints in ``reads`` from their cache entry, or by rendering a
    miss they offer a ``miss_render`` for; the rest to Flask."""

    def __init__(self, app: Flask, wsgi_app: WsgiApp, reads: Mapping[str, CachedRead]) -> None:
        self._app = app
        self.wsgi_app = wsgi_app
        self._reads = dict(reads)
        self.auth = EarlyAuth(app)
        self._path_prefixes: tuple[str, ...] | None = None
        self._routes = RouteMemo(app)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        answer = self._answer(environ) if plain_get(environ) else None
        if answer is None:
            return self.wsgi_app(environ, start_response)
        status, headers, body = answer
        start_response(status, headers)
        return [body]

    def _answer(self, environ: dict[str, Any]) -> Answer | None:
        if not environ.get("PATH_INFO", "").startswith(self._prefixes()):
            return None  # other endpoints: no cost beyond this test
        svc: Services = self._app.extensions[EXTENSION_KEY]
        if not self.auth.usable(svc):
            return None
        cache = VersionedCache(svc.redis, svc.settings.cache_ttl_seconds)
        claims = self.auth.claims(environ)
        route = self._route(svc, environ, cache) if claims is not None else None
        if claims is None or route is None:
            return None
        user_id = user_id_of(claims)
        if user_id is None:
            return None
        # The entry's keys and the replica flags ride in the auth round trip.
        flag_keys = route.read.flag_keys(svc, user_id)
        entry_keys = (route.keys.version, route.keys.entry) if cache.stores_entries else ()
        caller = self.auth.clear(svc, claims, (*entry_keys, *flag_keys))
        if caller is None:
            return None
        read = cache.read(
            route.keys.version, route.keys.entry, flag_keys, read_ahead=caller.read.ahead
        )
        if read is not None and read.entry is not None:
            cached: CachedBody | None = read.entry
        elif read is not None and route.render is not None:
            cached = self._render(svc, cache, read, route.keys.entry, route.render)
        else:
            cached = None
        if cached is None:
            return None
        answer = wsgi_json_answer(cached, environ)
        record_request(self._app, environ, "GET", route.rule, int(answer[0][:3]))
        return answer

    def _route(
        self, svc: Services, environ: dict[str, Any], cache: VersionedCache
    ) -> _Route | None:
        """The URL rule and cache keys of a cacheable read, matched as Flask matches it."""
        matched = self._routes.rule_for(environ)
        if matched is None:
            return None
        rule, view_args = matched
        read = self._reads.get(rule.endpoint)
        if read is None:
            return None
        args = self._app.request_class(environ, shallow=True).args
        keys = read.keys(svc, args, view_args)
        if keys is None:
            return None
        render = read.miss_render(args, view_args) if read.miss_render else None
        if render is None and not cache.stores_entries:
            return None  # no entry to read and no miss to render: nothing to answer here
        return _Route(rule, keys, read, render)

    def _prefixes(self) -> tuple[str, ...]:
        """The static beginnings of the cacheable endpoints' URL rules."""
        if self._path_prefixes is None:
            self._path_prefixes = tuple(
                rule.rule.split("<", 1)[0]
                for rule in self._app.url_map.iter_rules()
                if rule.endpoint in self._reads
            )
        return self._path_prefixes

    def _render(
        self, svc: Services, cache: VersionedCache, read: CacheRead, entry_key: str, render: Render
    ) -> CachedBody | None:
        """A miss rendered as the view renders it; None (Flask answers) if the database fails."""
        with_replicas = bool(svc.db.replicas)
        fresh = reads_primary(read, with_replicas)
        try:
            with read_connection(svc.db, fresh=fresh) as connection:
                return render_and_store(
                    cache, read, entry_key, with_replicas, lambda: render(connection)
                )
        except SQLAlchemyError as error:
            log.warning("cached read's miss left to Flask after a database error: %s", error)
            return None
