"""The signed-in user, and user management for admins."""

from __future__ import annotations

from typing import Any

from flask.typing import ResponseReturnValue
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from models import Role, User, accounts
from webapi.api import Blueprint
from webapi.pagination import Keyset, PageArgs, page_schema, paginate
from webapi.problems import Problem
from webapi.security import current_user, forget_user, require_role
from webapi.services import db_session

blp = Blueprint("users", __name__, url_prefix="/api/v1/users", description="Users and roles")

ROLES = validate.OneOf([role.value for role in Role])


class UserSchema(Schema):
    id = fields.Integer(dump_only=True)
    email = fields.String(dump_only=True)
    role = fields.String(dump_only=True)
    is_active = fields.Boolean(dump_only=True)
    created_at = fields.DateTime(dump_only=True)


class UserCreate(Schema):
    email = fields.Email(required=True, validate=validate.Length(max=320))
    password = fields.String(required=True, validate=validate.Length(min=8, max=256))
    role = fields.String(load_default=Role.CLERK.value, validate=ROLES)


class UserUpdate(Schema):
    role = fields.String(validate=ROLES)
    is_active = fields.Boolean()


class UserFilter(PageArgs):
    role = fields.String(validate=ROLES)
    email = fields.String(validate=validate.Length(max=320))
    is_active = fields.Boolean()


UserPage = page_schema(UserSchema, "UserPage")
_BY_ID = Keyset((User.id,))


@blp.route("/me")
@blp.response(200, UserSchema)
def me() -> ResponseReturnValue:
    """The signed-in user."""
    return current_user()


@blp.route("")
@blp.arguments(UserFilter, location="query")
@blp.response(200, UserPage)
def list_users(args: dict[str, Any]) -> ResponseReturnValue:
    """All users (admins only), oldest first."""
    require_role(Role.ADMIN)
    query = select(User)
    if "role" in args:
        query = query.where(User.role == args["role"])
    if "email" in args:
        query = query.where(User.email == accounts.normalize_email(args["email"]))
    if "is_active" in args:
        query = query.where(User.is_active == args["is_active"])
    session = db_session()
    with session.begin():
        items, next_cursor = paginate(
            session, query, _BY_ID, cursor=args["cursor"], limit=args["limit"]
        )
    return {"items": items, "next_cursor": next_cursor}


@blp.route("", methods=["POST"])
@blp.arguments(UserCreate)
@blp.response(201, UserSchema)
def create_user(body: dict[str, Any]) -> ResponseReturnValue:
    """Create a user with any role (admins only)."""
    require_role(Role.ADMIN)
    session = db_session()
    with session.begin():
        try:
            return accounts.create_user(
                session, body["email"], body["password"], Role(body["role"])
            )
        except accounts.EmailTaken as error:
            raise Problem(409, "email-taken", "An account with this email exists.") from error


def _get_user(user_id: int) -> User:
    user = db_session().get(User, user_id)
    if user is None:
        raise Problem(404, "not-found", f"No user {user_id}.")
    return user


@blp.route("/<int:user_id>")
@blp.response(200, UserSchema)
def get_user(user_id: int) -> ResponseReturnValue:
    """One user: admins see everyone, others only themselves."""
    viewer = current_user()
    if not viewer.is_admin and viewer.id != user_id:
        raise Problem(404, "not-found", f"No user {user_id}.")
    with db_session().begin():
        return _get_user(user_id)


@blp.route("/<int:user_id>", methods=["PATCH"])
@blp.arguments(UserUpdate)
@blp.response(200, UserSchema)
def update_user(body: dict[str, Any], user_id: int) -> ResponseReturnValue:
    """Change a user's role or deactivate it (admins only; not your own account)."""
    admin = require_role(Role.ADMIN)
    if admin.id == user_id and body:
        raise Problem(409, "self-modification", "Admins cannot change their own role or state.")
    with db_session().begin():
        user = _get_user(user_id)
        if "role" in body:
            user.role = body["role"]
        if "is_active" in body:
            user.is_active = body["is_active"]
    forget_user(user_id)
    return user
