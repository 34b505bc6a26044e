"""Registration, login, token refresh, logout and password change."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask.typing import ResponseReturnValue
from flask_jwt_extended import (
    create_access_token,
    create_refresh_token,
    get_jwt,
    verify_jwt_in_request,
)
from marshmallow import Schema, fields, validate

from models import accounts
from webapi.api import Blueprint
from webapi.problems import Problem
from webapi.ratelimit import limiter, login_account
from webapi.security import current_user, forget_user, public, revocation_list
from webapi.services import db_session, services
from webapi.users import UserSchema

blp = Blueprint("auth", __name__, url_prefix="/api/v1/auth", description="Sign in and tokens")

PASSWORD = validate.Length(min=8, max=256)


class Credentials(Schema):
    email = fields.Email(required=True, validate=validate.Length(max=320))
    password = fields.String(required=True, validate=PASSWORD)


class LoginSchema(Schema):
    email = fields.String(required=True, validate=validate.Length(min=1, max=320))
    password = fields.String(required=True, validate=validate.Length(min=1, max=256))


class TokenSchema(Schema):
    access_token = fields.String(required=True)
    refresh_token = fields.String()
    token_type = fields.String(required=True)
    expires_in = fields.Integer(required=True)


class PasswordChange(Schema):
    current_password = fields.String(required=True, validate=validate.Length(max=256))
    new_password = fields.String(required=True, validate=PASSWORD)


def _tokens(user_id: int, *, with_refresh: bool = True) -> dict[str, Any]:
    identity = str(user_id)
    body: dict[str, Any] = {
        "access_token": create_access_token(identity=identity),
        "token_type": "Bearer",
        "expires_in": services().settings.access_token_minutes * 60,
    }
    if with_refresh:
        body["refresh_token"] = create_refresh_token(identity=identity)
    return body


def _revoke(payload: dict[str, Any]) -> None:
    revocation_list().revoke(payload["jti"], datetime.fromtimestamp(payload["exp"], UTC))


@blp.route("/register", methods=["POST"])
@blp.doc(security=[])
@limiter.limit(lambda: services().settings.login_rate_limit, key_func=login_account)
@blp.arguments(Credentials)
@blp.response(201, UserSchema)
@public
def register(body: dict[str, str]) -> ResponseReturnValue:
    """Open self-registration (``ALLOW_REGISTRATION``); new users get the role ``clerk``."""
    if not services().settings.registration_open:
        raise Problem(403, "registration-closed", "Self-registration is turned off.")
    session = db_session()
    with session.begin():
        try:
            user = accounts.create_user(session, body["email"], body["password"])
        except accounts.EmailTaken as error:
            raise Problem(409, "email-taken", "An account with this email exists.") from error
    return user


@blp.route("/login", methods=["POST"])
@blp.doc(security=[])
@limiter.limit(lambda: services().settings.login_rate_limit, key_func=login_account)
@limiter.limit(lambda: services().settings.login_rate_limit)
@blp.arguments(LoginSchema)
@blp.response(200, TokenSchema)
@public
def login(body: dict[str, str]) -> ResponseReturnValue:
    """Exchange email and password for an access token and a refresh token."""
    session = db_session()
    with session.begin():
        user = accounts.authenticate(session, body["email"], body["password"])
    if user is None:
        raise Problem(401, "invalid-credentials", "Email or password is wrong.")
    return _tokens(user.id)


@blp.route("/refresh", methods=["POST"])
@blp.doc(security=[{"bearerAuth": []}])
@blp.response(200, TokenSchema)
@public
def refresh() -> ResponseReturnValue:
    """Send the refresh token as the Bearer token; answers a new pair (the old one is revoked)."""
    verify_jwt_in_request(refresh=True)
    user = current_user()
    _revoke(get_jwt())
    return _tokens(user.id)


@blp.route("/logout", methods=["POST"])
@blp.response(204)
@public
def logout() -> ResponseReturnValue:
    """Revoke the token sent (access or refresh); send each to revoke both."""
    verify_jwt_in_request(verify_type=False)
    current_user()
    _revoke(get_jwt())
    return "", 204


@blp.route("/password", methods=["POST"])
@blp.arguments(PasswordChange)
@blp.response(204)
def change_password(body: dict[str, str]) -> ResponseReturnValue:
    """Change the password; every token issued before now stops working."""
    session = db_session()
    with session.begin():
        user = accounts.authenticate(session, current_user().email, body["current_password"])
        if user is None:
            raise Problem(403, "invalid-credentials", "The current password is wrong.")
        accounts.change_password(user, body["new_password"])
    forget_user(user.id)
    return "", 204
