"""JWT access and refresh tokens (flask-jwt-extended), revocation, and the current user."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import jwt as pyjwt
from flask import Flask, Response, current_app, g, request
from flask_jwt_extended import JWTManager, get_jwt, verify_jwt_in_request
from flask_jwt_extended.exceptions import RevokedTokenError, UserLookupError

from models import Role, User
from shelfwatch.config import Settings
from webapi.auth_cache import AuthCache
from webapi.problems import Problem, problem_response
from webapi.revocation import RevocationList
from webapi.services import services

F = TypeVar("F", bound=Callable[..., Any])

jwt = JWTManager()
# Per app: access tokens whose signature it has checked (the exact string, signature
# included): the same string cannot verify differently later, so only its expiry is checked
# again. Revocation and the user's state are still read on every request.
_VERIFIED_TOKENS = "shelfwatch_verified_tokens"
_VERIFIED_TOKENS_KEPT = 4096


def configure_jwt(app: Flask, settings: Settings) -> None:
    app.config.update(
        JWT_SECRET_KEY=settings.jwt_secret(),
        JWT_ALGORITHM="HS256",
        JWT_DECODE_ALGORITHMS=["HS256"],
        JWT_ACCESS_TOKEN_EXPIRES=timedelta(minutes=settings.access_token_minutes),
        JWT_REFRESH_TOKEN_EXPIRES=timedelta(days=settings.refresh_token_days),
        JWT_TOKEN_LOCATION=["headers"],
        JWT_ERROR_MESSAGE_KEY="detail",
        PROPAGATE_EXCEPTIONS=False,
    )
    jwt.init_app(app)
    app.extensions[_VERIFIED_TOKENS] = {}
    _register_loaders()


def _unauthorized(type_: str, detail: str) -> Response:
    return problem_response(
        Problem(401, type_, detail, headers={"WWW-Authenticate": 'Bearer realm="shelfwatch"'})
    )


def _register_loaders() -> None:
    jwt.unauthorized_loader(lambda reason: _unauthorized("missing-token", reason))
    jwt.invalid_token_loader(lambda reason: _unauthorized("invalid-token", reason))
    jwt.expired_token_loader(
        lambda _h, _p: _unauthorized("expired-token", "The token has expired.")
    )
    jwt.revoked_token_loader(
        lambda _h, _p: _unauthorized("revoked-token", "The token was revoked.")
    )
    jwt.user_lookup_error_loader(
        lambda _h, _p: _unauthorized("invalid-token", "The token's user is unknown or inactive.")
    )
    jwt.needs_fresh_token_loader(
        lambda _h, _p: _unauthorized("fresh-token-required", "Log in again for this action.")
    )
    jwt.token_verification_failed_loader(
        lambda _h, _p: _unauthorized("invalid-token", "The token's claims were refused.")
    )
    jwt.token_in_blocklist_loader(_is_revoked)
    jwt.user_lookup_loader(_load_user)


def revocation_list() -> RevocationList:
    svc = services()
    return RevocationList(svc.db, svc.redis, svc.settings.redis_prefix)


def auth_cache() -> AuthCache:
    svc = services()
    return AuthCache(svc.redis, svc.settings.redis_prefix)


def _is_revoked(_header: dict[str, Any], payload: dict[str, Any]) -> bool:
    user, revoked = _load_user_and_revocation(payload)
    if user is not None and issued_before_cut_off(payload, user.tokens_valid_after):
        return True
    if revoked is None:
        revoked = revocation_list().is_revoked(payload["jti"])
    return revoked


def issued_before_cut_off(claims: Mapping[str, Any], tokens_valid_after: datetime | None) -> bool:
    """Whether the token was issued before the user's cut-off (logout everywhere, password
    change): such a token counts as revoked."""
    if tokens_valid_after is None:
        return False
    issued = datetime.fromtimestamp(claims["iat"], UTC)
    return issued < tokens_valid_after.replace(microsecond=0)


def _load_user_and_revocation(payload: dict[str, Any]) -> tuple[User | None, bool | None]:
    """The token's active user (or None) and, when Redis answered, whether it is revoked."""
    try:
        user_id = int(payload["sub"])
    except (KeyError, TypeError, ValueError):
        g.current_user = None
        return None, None
    cache = auth_cache()
    read = cache.lookup(user_id, str(payload.get("jti")), _keys_to_read_ahead(user_id))
    g.read_ahead = read.ahead
    user = read.user
    if user is None:
        # A session of its own, so that the view's session starts with no transaction open.
        with services().db.session() as session:
            user = session.get(User, user_id)
        if user is not None:
            cache.remember(user)
    g.current_user = user if user is not None and user.is_active else None
    return g.current_user, read.revoked


def _load_user(_header: dict[str, Any], payload: dict[str, Any]) -> User | None:
    if "current_user" not in g:
        _load_user_and_revocation(payload)
    return g.current_user


def forget_user(user_id: int) -> None:
    """Call after changing a user's role, state or password: the next request sees it."""
    auth_cache().forget(user_id)


def public(view: F) -> F:
    """Mark a view as reachable without a token (health, docs, login)."""
    view._public = True  # type: ignore[attr-defined]
    return view


def read_ahead(keys_for: Callable[[int], Sequence[str]]) -> Callable[[F], F]:
    """Read the view's Redis keys ``keys_for(user_id)`` in the auth lookup's round trip; the
    view finds their values in ``read_ahead_values()``. ``keys_for`` runs before the
    arguments are validated: it must not raise, and returns no keys when unsure."""

    def mark(view: F) -> F:
        view._read_ahead = keys_for  # type: ignore[attr-defined]
        return view

    return mark


def read_ahead_values() -> dict[str, bytes | None]:
    """The values read ahead for this request's view (empty when Redis did not answer)."""
    return g.get("read_ahead", {})


def _keys_to_read_ahead(user_id: int) -> Sequence[str]:
    keys_for = _view_attribute("_read_ahead")
    return keys_for(user_id) if keys_for is not None else ()


def _view_attribute(name: str) -> Any:
    """An attribute set by a decorator on the request's view (or its method's function)."""
    if request.endpoint is None:
        return None
    view = current_app.view_functions.get(request.endpoint)
    view_class = getattr(view, "view_class", None)
    target = getattr(view_class, request.method.lower(), None) if view_class else view
    return getattr(target, name, None) or getattr(view, name, None)


def _is_public_endpoint() -> bool:
    if request.endpoint is None:
        return True  # 404/405: let routing answer
    if request.endpoint in ("static",) or request.endpoint.startswith("api-docs."):
        return True
    return bool(_view_attribute("_public"))


def require_token_by_default(app: Flask) -> None:
    """Every endpoint needs a valid access token unless marked ``@public``."""

    @app.before_request
    def _check_token() -> Response | None:
        if request.method == "OPTIONS" or _is_public_endpoint():
            return None
        decoded = _decode_access_token()
        if decoded is None:
            # Anything unusual: the library decodes again and answers with its own error (the
            # loaders above), so both paths refuse a token with the same problem.
            verify_jwt_in_request()
        else:
            _accept(*decoded)
        if current_user_or_none() is None:
            return _unauthorized("invalid-token", "The token's user is unknown or inactive.")
        return None


def _decode_access_token() -> tuple[dict[str, Any], dict[str, Any]] | None:
    return verified_access_token(current_app, request.headers.get("Authorization", ""))


def verified_access_token(
    app: Flask, authorization: str
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Header and claims of a valid access token in an ``Authorization`` header value, decoded
    and checked once per app with PyJWT (flask-jwt-extended decodes each token four times);
    None when the header or the token is not a valid access token. Revocation and the user
    are not checked here."""
    scheme, _, token = authorization.partition(" ")
    if scheme != "Bearer" or not token or " " in token:
        return None
    verified_tokens = app.extensions[_VERIFIED_TOKENS]
    verified = verified_tokens.get(token)
    if verified is not None and verified[1]["exp"] > time.time():
        return verified[0], dict(verified[1])
    decoded = _verify(token, app.config)
    if decoded is not None and isinstance(decoded[1].get("exp"), int | float):
        if len(verified_tokens) >= _VERIFIED_TOKENS_KEPT:
            verified_tokens.clear()
        verified_tokens[token] = (decoded[0], dict(decoded[1]))
    return decoded


def _verify(token: str, config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    try:
        # The same checks as flask-jwt-extended: signature, exp, iat, nbf, sub a string.
        decoded = pyjwt.decode_complete(
            token, config["JWT_SECRET_KEY"], algorithms=config["JWT_DECODE_ALGORITHMS"]
        )
    except pyjwt.InvalidTokenError:
        return None
    claims = decoded["payload"]
    if "sub" not in claims or claims.get("type", "access") != "access":
        return None
    claims.setdefault("type", "access")
    claims.setdefault("fresh", False)
    claims.setdefault("jti", None)
    return decoded["header"], claims


def _accept(header: dict[str, Any], claims: dict[str, Any]) -> None:
    """The revocation and user checks of ``verify_jwt_in_request``, then its request state
    (``get_jwt()``, ``get_jwt_identity()`` read it)."""
    if _is_revoked(header, claims):
        raise RevokedTokenError(header, claims)
    user = _load_user(header, claims)
    if user is None:
        raise UserLookupError("The token's user is unknown or inactive.", header, claims)
    g._jwt_extended_jwt_user = {"loaded_user": user}
    g._jwt_extended_jwt_header = header
    g._jwt_extended_jwt = claims
    g._jwt_extended_jwt_location = "headers"


def current_user_or_none() -> User | None:
    if "current_user" in g:
        return g.current_user
    try:
        payload = get_jwt()
    except RuntimeError:
        return None
    return _load_user({}, payload) if payload else None


def current_user() -> User:
    user = current_user_or_none()
    if user is None:
        raise Problem(401, "missing-token", "Sign in first.")
    return user


def require_role(*roles: Role) -> User:
    """The current user if it has one of ``roles``, else a 403 problem."""
    user = current_user()
    if user.role not in {role.value for role in roles}:
        raise Problem(403, "forbidden", "Your role does not allow this action.")
    return user
