"""Scrape schedules: periodic scrape jobs that Celery beat launches from the database.

Managers and admins create and change schedules (a schedule is a standing claim on crawl
capacity, so clerks, who may submit one-off jobs, may not); everyone sees only their own,
admins see all. Changes take effect in beat within ``beat_poll_seconds``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import url_for
from flask.typing import ResponseReturnValue
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from models import Role, ScrapeSchedule, User
from models.schedule_timing import InvalidTiming, Timing
from models.schedules import (
    ScheduleNotFound,
    WatchManagedSchedule,
    create_schedule,
    delete_schedule,
    get_schedule,
    pause_schedule,
    resume_schedule,
    update_schedule,
)
from webapi.api import Blueprint
from webapi.pagination import Keyset, PageArgs, page_schema, paginate
from webapi.problems import Problem, invalid_field
from webapi.scrape_jobs import MAX_URLS
from webapi.security import current_user, require_role
from webapi.services import db_session
from webapi.spider_requests import check_spider_request

blp = Blueprint(
    "scrape_schedules",
    __name__,
    url_prefix="/api/v1/scrape-schedules",
    description="Periodic scrape jobs (cron in a time zone, or an interval)",
)

_ONE = "/<int:schedule_id>"
_NEWEST_FIRST = Keyset((ScrapeSchedule.created_at, ScrapeSchedule.id), descending=True)


class ScheduleCreate(Schema):
    name = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=200))
    spider = fields.String(required=True, validate=validate.Length(min=1, max=64))
    urls = fields.List(
        fields.String(validate=validate.Length(min=1, max=2048)),
        required=True,
        validate=validate.Length(min=1, max=MAX_URLS),
    )
    args = fields.Dict(keys=fields.String(), load_default=dict)
    max_age = fields.Integer(
        load_default=None, allow_none=True, strict=True, validate=validate.Range(0, 10**9)
    )
    cron = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(min=1, max=120),
        metadata={"description": 'five fields, e.g. "*/15 * * * *"; or set interval_seconds'},
    )
    timezone = fields.String(
        load_default="UTC",
        validate=validate.Length(min=1, max=64),
        metadata={"description": "IANA name the cron expression is read in"},
    )
    interval_seconds = fields.Integer(
        load_default=None,
        allow_none=True,
        strict=True,
        metadata={"description": "seconds between runs (10 or more); or set cron"},
    )
    enabled = fields.Boolean(load_default=True)


class ScheduleUpdate(ScheduleCreate):
    """Any fields of a schedule; setting one of cron/interval_seconds clears the other."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(partial=True, **kwargs)


class ScheduleSchema(Schema):
    id = fields.Integer()
    name = fields.String(allow_none=True)
    spider = fields.String()
    urls = fields.List(fields.String())
    args = fields.Dict()
    max_age = fields.Integer(allow_none=True)
    cron = fields.String(allow_none=True)
    timezone = fields.String()
    interval_seconds = fields.Integer(allow_none=True)
    enabled = fields.Boolean()
    next_run_at = fields.DateTime(allow_none=True)
    last_run_at = fields.DateTime(allow_none=True)
    last_job_id = fields.String(allow_none=True)
    watch_product_id = fields.Integer(
        allow_none=True,
        metadata={"description": "set when the schedule follows a product's watches"},
    )
    created_by = fields.Integer(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class ScheduleFilter(PageArgs):
    enabled = fields.Boolean()
    spider = fields.String(validate=validate.Length(min=1, max=64))


SchedulePage = page_schema(ScheduleSchema, "ScrapeSchedulePage")


@contextmanager
def _schedule_errors() -> Iterator[None]:
    """The domain's refusals as problems, in one place."""
    try:
        yield
    except InvalidTiming as error:
        raise invalid_field(error.field, error.message) from None
    except WatchManagedSchedule:
        raise Problem(
            409,
            "schedule-follows-watches",
            "This schedule scrapes a product's watched URLs; change the watches instead.",
        ) from None


def _visible(schedule_id: int, user: User, *, for_update: bool = False) -> ScrapeSchedule:
    try:
        schedule = get_schedule(db_session(), schedule_id, for_update=for_update)
    except ScheduleNotFound:
        schedule = None
    if schedule is None or (not user.is_admin and schedule.created_by != user.id):
        raise Problem(404, "not-found", f"No scrape schedule {schedule_id}.")
    return schedule


def _one_timing(body: dict[str, Any]) -> dict[str, Any]:
    """Setting one of cron/interval_seconds in an edit clears the other."""
    if body.get("cron") is not None and "interval_seconds" not in body:
        body["interval_seconds"] = None
    if body.get("interval_seconds") is not None and "cron" not in body:
        body["cron"] = None
    return body


@blp.route("", methods=["POST"])
@blp.arguments(ScheduleCreate)
@blp.response(201, ScheduleSchema)
def create(body: dict[str, Any]) -> ResponseReturnValue:
    """Create a schedule; ``next_run_at`` tells when beat first launches it."""
    user = require_role(Role.ADMIN, Role.MANAGER)
    check_spider_request(body["spider"], body["urls"], body["args"])
    timing = Timing(body.pop("cron"), body.pop("timezone"), body.pop("interval_seconds"))
    session = db_session()
    with session.begin(), _schedule_errors():
        schedule = create_schedule(session, timing=timing, created_by=user.id, **body)
    location = url_for("scrape_schedules.read", schedule_id=schedule.id)
    return schedule, 201, {"Location": location}


@blp.route("")
@blp.arguments(ScheduleFilter, location="query")
@blp.response(200, SchedulePage)
def list_schedules(args: dict[str, Any]) -> ResponseReturnValue:
    """Your schedules, newest first (admins see everyone's)."""
    user = current_user()
    query = select(ScrapeSchedule)
    if not user.is_admin:
        query = query.where(ScrapeSchedule.created_by == user.id)
    if "enabled" in args:
        query = query.where(ScrapeSchedule.enabled.is_(args["enabled"]))
    if "spider" in args:
        query = query.where(ScrapeSchedule.spider == args["spider"])
    session = db_session()
    with session.begin():
        items, next_cursor = paginate(
            session, query, _NEWEST_FIRST, cursor=args["cursor"], limit=args["limit"]
        )
    return {"items": items, "next_cursor": next_cursor}


@blp.route(_ONE)
@blp.response(200, ScheduleSchema)
def read(schedule_id: int) -> ResponseReturnValue:
    """One schedule with its next and last run and the last job's id."""
    user = current_user()
    with db_session().begin():
        return _visible(schedule_id, user)


@blp.route(_ONE, methods=["PATCH"])
@blp.arguments(ScheduleUpdate)
@blp.response(200, ScheduleSchema)
def update(body: dict[str, Any], schedule_id: int) -> ResponseReturnValue:
    """Change a schedule; a new timing recomputes ``next_run_at``."""
    user = require_role(Role.ADMIN, Role.MANAGER)
    session = db_session()
    with session.begin(), _schedule_errors():
        schedule = _visible(schedule_id, user, for_update=True)
        if {"spider", "urls", "args"} & body.keys():
            check_spider_request(
                body.get("spider", schedule.spider),
                body.get("urls", schedule.urls),
                body.get("args", schedule.args),
            )
        update_schedule(session, schedule, _one_timing(body))
    return schedule


def _switch(schedule_id: int, enabled: bool) -> ScrapeSchedule:
    user = require_role(Role.ADMIN, Role.MANAGER)
    session = db_session()
    with session.begin():
        schedule = _visible(schedule_id, user, for_update=True)
        (resume_schedule if enabled else pause_schedule)(session, schedule)
    return schedule


@blp.route(f"{_ONE}/pause", methods=["POST"])
@blp.response(200, ScheduleSchema)
def pause(schedule_id: int) -> ResponseReturnValue:
    """Stop launching runs; those that fall in the pause are skipped."""
    return _switch(schedule_id, enabled=False)


@blp.route(f"{_ONE}/resume", methods=["POST"])
@blp.response(200, ScheduleSchema)
def resume(schedule_id: int) -> ResponseReturnValue:
    """Launch runs again from the next scheduled time (an overdue interval runs at once)."""
    return _switch(schedule_id, enabled=True)


@blp.route(_ONE, methods=["DELETE"])
@blp.response(204)
def delete(schedule_id: int) -> ResponseReturnValue:
    """Remove a schedule; its past jobs stay."""
    user = require_role(Role.ADMIN, Role.MANAGER)
    session = db_session()
    with session.begin():
        delete_schedule(session, _visible(schedule_id, user, for_update=True))
    return ""
