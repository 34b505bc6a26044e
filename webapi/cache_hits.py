"""Cache hits of product reads, answered before Flask.

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

Everything else falls through to Flask, which stays the one place that decides and refuses:
no or bad token, a user record not in Redis, a token revoked or that Redis cannot vouch for,
an inactive user, a token issued before the user's cut-off, an odd query or condition, a
miss, Redis down (then Flask alone tries it for a second), rate limits set for every route.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from flask import Flask
from werkzeug.datastructures import MultiDict
from werkzeug.routing import Rule

from webapi.caching import VersionedCache, plain_get, wsgi_json_answer
from webapi.early_auth import EarlyAuth
from webapi.metrics import record_request
from webapi.routing import match_route
from webapi.services import EXTENSION_KEY, Services

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


class CacheHitShortcut:
    """Answers GETs of the endpoints in ``reads`` from their cache entry; the rest to Flask."""

    def __init__(self, app: Flask, wsgi_app: WsgiApp, reads: Mapping[str, CacheKeysFinder]) -> None:
        self._app = app
        self.wsgi_app = wsgi_app
        self._reads = dict(reads)
        self.auth = EarlyAuth(app)
        self._path_prefixes: tuple[str, ...] | None = None

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
        if svc.settings.cache_ttl_seconds <= 0 or not self.auth.usable(svc):
            return None
        claims = self.auth.claims(environ)
        route = self._route(svc, environ) if claims is not None else None
        if claims is None or route is None:
            return None
        rule, keys = route
        caller = self.auth.clear(svc, claims, (keys.version, keys.entry))
        if caller is None:
            return None
        cache = VersionedCache(svc.redis, svc.settings.cache_ttl_seconds)
        cached = cache.read(keys.version, keys.entry, read_ahead=caller.read.ahead)
        if cached is None or cached.entry is None:
            return None
        answer = wsgi_json_answer(cached.entry, environ)
        record_request(self._app, environ, "GET", rule, int(answer[0][:3]))
        return answer

    def _route(self, svc: Services, environ: dict[str, Any]) -> tuple[Rule, CacheKeys] | None:
        """The URL rule and cache keys of a cacheable read, matched as Flask matches it."""
        route = match_route(self._app, environ)
        if route is None:
            return None
        request, rule, view_args = route
        find = self._reads.get(rule.endpoint)
        keys = find(svc, request.args, view_args) if find is not None else None
        return (rule, keys) if keys is not None else None

    def _prefixes(self) -> tuple[str, ...]:
        """The static beginnings of the cacheable endpoints' URL rules."""
        if self._path_prefixes is None:
            self._path_prefixes = tuple(
                rule.rule.split("<", 1)[0]
                for rule in self._app.url_map.iter_rules()
                if rule.endpoint in self._reads
            )
        return self._path_prefixes
