"""Versioned response caching in Redis, and ETag / If-None-Match answers.

Each cached body is stored with the version of the data it was computed from. A write
increments the version *after* its transaction commits, so a body computed from data older
than the write carries an older version and is never served again: there is no window in
which a reader can put a stale body back under the current version (unlike delete-on-write).

Redis is an accelerator only: when it cannot be reached every method degrades to "no cache"
and the caller reads the database.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from hashlib import blake2b
from typing import Any

import redis
from flask import Response, request
from werkzeug.http import http_date, is_resource_modified

log = logging.getLogger(__name__)

_SEPARATOR = b"\x00"


@dataclass(frozen=True)
class CachedBody:
    """A JSON body and its strong ETag (a hash of the bytes)."""

    etag: str
    body: bytes

    @classmethod
    def of(cls, body: bytes) -> CachedBody:
        return cls(blake2b(body, digest_size=16).hexdigest(), body)


def json_response(cached: CachedBody, status: int = 200) -> Response:
    """The body as application/json with its ETag; a matching If-None-Match gives 304."""
    response = Response(cached.body, status=status, mimetype="application/json")
    response.set_etag(cached.etag)
    # Clients may keep the body but must revalidate; shared caches must not keep it at all.
    response.headers["Cache-Control"] = "private, no-cache"
    if status == 200 and request.method in ("GET", "HEAD"):
        response.make_conditional(request)
    return response


# Conditions only ``json_response`` (werkzeug's make_conditional) answers: ranges, If-Match
# (412) and dates.
_OTHER_CONDITIONS = (
    "HTTP_RANGE",
    "HTTP_IF_RANGE",
    "HTTP_IF_MATCH",
    "HTTP_IF_MODIFIED_SINCE",
    "HTTP_IF_UNMODIFIED_SINCE",
)


def plain_get(environ: Mapping[str, Any]) -> bool:
    """A GET that ``wsgi_json_answer`` answers like ``json_response``: no range, no If-Match,
    no date condition (If-None-Match is fine)."""
    return environ.get("REQUEST_METHOD") == "GET" and not any(
        name in environ for name in _OTHER_CONDITIONS
    )


def wsgi_json_answer(
    cached: CachedBody, environ: dict[str, Any]
) -> tuple[str, list[tuple[str, str]], bytes]:
    """Status, headers and body that ``json_response(cached)`` gives to a ``plain_get``
    request, built without a Flask request (a test keeps the two identical)."""
    etag = f'"{cached.etag}"'
    common = [("ETag", etag), ("Cache-Control", "private, no-cache"), ("Date", http_date())]
    if "HTTP_IF_NONE_MATCH" in environ and not is_resource_modified(environ, etag):
        return "304 NOT MODIFIED", common, b""
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(cached.body))),
        *common,
    ]
    return "200 OK", headers, cached.body


@dataclass(frozen=True)
class CacheRead:
    """What one round trip to Redis told: the current version, a usable entry, flags."""

    version: bytes | None
    entry: CachedBody | None
    flags: tuple[bool, ...]


class VersionedCache:
    """Entries tagged with a version number; ``bump`` makes every older entry a miss."""

    def __init__(self, client: redis.Redis | None, ttl_seconds: int) -> None:
        self._redis = client
        self._ttl = ttl_seconds

    @property
    def stores_entries(self) -> bool:
        return self._redis is not None and self._ttl > 0

    def read(
        self,
        version_key: str,
        entry_key: str,
        flag_keys: Iterable[str] = (),
        read_ahead: Mapping[str, bytes | None] | None = None,
    ) -> CacheRead | None:
        """Version, entry and the existence of ``flag_keys`` in one MGET; None if Redis is down.

        No round trip at all when ``read_ahead`` (values fetched earlier in this request)
        holds every key, or when entries are off (TTL 0) and no flag is asked for."""
        if self._redis is None:
            return None
        flag_keys = list(flag_keys)
        if not self.stores_entries and not flag_keys:
            return CacheRead(None, None, ())  # nothing to learn from Redis: no round trip
        keys = [version_key, entry_key, *flag_keys]
        if read_ahead is not None and all(key in read_ahead for key in keys):
            values = [read_ahead[key] for key in keys]
        else:
            try:
                values = self._redis.mget(keys)
            except redis.RedisError as error:
                log.warning("response cache unavailable, reading the database: %s", error)
                return None
        version, raw_entry = values[0], values[1]
        if version is None:
            version = self._start_version(version_key)
        entry = self._decode(raw_entry, version) if self.stores_entries else None
        return CacheRead(version, entry, tuple(flag is not None for flag in values[2:]))

    def _start_version(self, version_key: str) -> bytes | None:
        # A random start: if the counter was evicted, old entries cannot match the new one.
        try:
            self._redis.set(version_key, secrets.randbits(48), nx=True)  # type: ignore[union-attr]
            return self._redis.get(version_key)  # type: ignore[union-attr]
        except redis.RedisError:
            return None

    @staticmethod
    def _decode(raw: bytes | None, version: bytes | None) -> CachedBody | None:
        if raw is None or version is None:
            return None
        entry_version, etag, body = raw.split(_SEPARATOR, 2)
        if entry_version != version:
            return None
        return CachedBody(etag.decode(), body)

    def store(self, entry_key: str, version: bytes | None, cached: CachedBody) -> None:
        """Keep ``cached`` as computed at ``version`` (the version read *before* the query)."""
        if not self.stores_entries or version is None:
            return
        value = _SEPARATOR.join((version, cached.etag.encode(), cached.body))
        try:
            self._redis.set(entry_key, value, ex=self._ttl)  # type: ignore[union-attr]
        except redis.RedisError as error:
            log.warning("response cache unavailable, entry not stored: %s", error)

    def bump(self, version_keys: Iterable[str], flags: Mapping[str, int] | None = None) -> None:
        """Invalidate every entry tagged with these versions; set ``flags`` with TTLs (seconds).

        Call after the write's transaction has committed."""
        if self._redis is None:
            return
        pipe = self._redis.pipeline(transaction=False)
        for key in version_keys:
            pipe.set(key, secrets.randbits(48), nx=True)
            pipe.incr(key)
        for key, seconds in (flags or {}).items():
            pipe.set(key, 1, ex=seconds)
        try:
            pipe.execute()
        except redis.RedisError as error:
            # Entries written before the outage may be served until they expire (the TTL).
            log.warning("response cache unavailable, versions not bumped: %s", error)
