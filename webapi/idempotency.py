"""The ``Idempotency-Key`` request header (draft-ietf-httpapi-idempotency-key-header).

A key is scoped to the signed-in user. The first successful answer to a key is replayed
(same status and body, plus ``Idempotent-Replayed: true``); a failed request stores nothing,
so retrying it with the same key evaluates it again. The same key with another body is a 422.
"""

from __future__ import annotations

from flask import request

from webapi.problems import Problem

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_LENGTH = 200
# Keys of this form are given by the server to the movements of an asynchronous batch.
RESERVED_PREFIX = "batch:"


def idempotency_key() -> str | None:
    """The request's key, or None; 400 when it is empty, too long or reserved."""
    return checked_key(request.headers.get(HEADER))


def checked_key(header: str | None) -> str | None:
    """The key an ``Idempotency-Key`` header value gives, or None without the header; 400
    when it is empty, too long or reserved."""
    if header is None:
        return None
    key = header.strip()
    if not key or len(key) > MAX_LENGTH or not key.isprintable() or key.startswith(RESERVED_PREFIX):
        raise Problem(
            400,
            "invalid-idempotency-key",
            f"The {HEADER} header must be 1 to {MAX_LENGTH} printable characters "
            f"not starting with {RESERVED_PREFIX!r}.",
            errors=[{"field": HEADER, "message": "invalid key"}],
        )
    return key


def key_reused() -> Problem:
    return Problem(
        422,
        "idempotency-key-reused",
        f"This {HEADER} was already used for a different request.",
    )
