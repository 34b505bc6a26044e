"""Operations on user accounts."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models.base import utcnow
from models.passwords import hash_password, verify_password
from models.users import Role, User


class EmailTaken(Exception):
    """Another account already uses this email address."""


def normalize_email(email: str) -> str:
    return email.strip().lower()


def find_by_email(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == normalize_email(email)))


def create_user(session: Session, email: str, password: str, role: Role = Role.CLERK) -> User:
    """Add a user; raises ``EmailTaken`` if the address is in use (checked by the database)."""
    user = User(email=normalize_email(email), password_hash=hash_password(password), role=role)
    try:
        with session.begin_nested():
            session.add(user)
    except IntegrityError as error:
        raise EmailTaken(email) from error
    return user


def authenticate(session: Session, email: str, password: str) -> User | None:
    """The active user with these credentials, or None (same cost either way)."""
    user = find_by_email(session, email)
    valid = verify_password(user.password_hash if user else None, password)
    if user is None or not valid or not user.is_active:
        return None
    return user


def change_password(user: User, new_password: str) -> None:
    """Set a new password and invalidate every token issued before now."""
    user.password_hash = hash_password(new_password)
    user.tokens_valid_after = utcnow()


def create_or_promote_admin(session: Session, email: str, password: str | None) -> User:
    user = find_by_email(session, email)
    if user is None:
        if not password:
            raise ValueError("a password is required to create a new admin")
        return create_user(session, email, password, Role.ADMIN)
    user.role = Role.ADMIN.value
    user.is_active = True
    if password:
        change_password(user, password)
    return user
