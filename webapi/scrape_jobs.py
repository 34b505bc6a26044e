"""Scrape jobs: submit, list, read, cancel, and the products a job stored; the spiders."""

from __future__ import annotations

import time
from typing import Any

from flask import current_app, url_for
from flask.typing import ResponseReturnValue
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from models import ScrapedProduct, ScrapeJob, ScrapeJobProduct
from models.jobs import JobAlreadyFinished, cancel_job
from models.scraping import JobStatus
from models.users import User
from tasks.job_events import announce
from webapi import spider_catalog
from webapi.api import Blueprint
from webapi.celery_client import celery_app
from webapi.job_submission import (
    MAX_AGE_RANGE,
    MAX_URLS,
    PRIORITY_RANGE,
    SPIDER_CHARS,
    URL_CHARS,
    JobRequest,
    accepted_body,
    submit_job_request,
)
from webapi.job_waits import job_end_watcher, wait_until_finished
from webapi.pagination import Keyset, PageArgs, page_schema, paginate
from webapi.problems import Problem
from webapi.scrape_schemas import ScrapedItemSchema
from webapi.security import current_user
from webapi.services import db_session, read_session, services
from webapi.spider_requests import check_spider_request
from webapi.submit_limit import check_submit_rate

blp = Blueprint(
    "scrape_jobs", __name__, url_prefix="/api/v1", description="Scrape jobs and spiders"
)

# A long poll holds one server thread: bounded well below gunicorn's worker timeout.
MAX_WAIT_SECONDS = 20.0
STATUSES = validate.OneOf([status.value for status in JobStatus])


class JobCreate(Schema):
    # Its bounds are ``job_submission``'s, whose ``plainly_valid_request`` mirrors it.
    spider = fields.String(required=True, validate=validate.Length(*SPIDER_CHARS))
    urls = fields.List(
        fields.String(validate=validate.Length(*URL_CHARS)),
        required=True,
        validate=validate.Length(min=1, max=MAX_URLS),
    )
    args = fields.Dict(keys=fields.String(), load_default=dict)
    max_age = fields.Integer(
        load_default=None, allow_none=True, validate=validate.Range(*MAX_AGE_RANGE)
    )
    priority = fields.Integer(load_default=0, validate=validate.Range(*PRIORITY_RANGE))


class JobSchema(Schema):
    id = fields.String()
    spider = fields.String()
    status = fields.String()
    urls_count = fields.Function(lambda job: len(job.urls or []))
    args = fields.Dict()
    max_age = fields.Integer(allow_none=True)
    priority = fields.Integer()
    stats = fields.Dict()
    error = fields.String(allow_none=True)
    chunks_total = fields.Integer()
    chunks_done = fields.Integer()
    cancel_requested = fields.Boolean()
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)


class JobFilter(PageArgs):
    status = fields.String(validate=STATUSES)
    spider = fields.String(validate=validate.Length(max=64))
    created_after = fields.AwareDateTime(default_timezone=None)
    created_before = fields.AwareDateTime(default_timezone=None)


class JobWait(Schema):
    wait = fields.Float(
        load_default=0.0,
        validate=validate.Range(min=0, max=MAX_WAIT_SECONDS),
        metadata={"description": "Seconds to wait for the job to end before answering."},
    )


class SpiderSchema(Schema):
    name = fields.String()
    description = fields.String()
    args_schema = fields.Dict()


JobPage = page_schema(JobSchema, "ScrapeJobPage")
ItemPage = page_schema(ScrapedItemSchema, "ScrapeJobItemPage")
SpiderList = Schema.from_dict({"items": fields.List(fields.Nested(SpiderSchema))}, name="Spiders")
_NEWEST_FIRST = Keyset((ScrapeJob.created_at, ScrapeJob.id), descending=True)
_BY_ID = Keyset((ScrapedProduct.id,))


@blp.route("/scrape-jobs", methods=["POST"])
@blp.arguments(JobCreate)
@blp.response(202, JobSchema)
def submit_job(body: dict[str, Any]) -> ResponseReturnValue:
    """Request a scrape: 202 with the queued job and its ``Location``."""
    user = current_user()
    check_submit_rate(user.id)
    job_request = JobRequest(**body)
    check_spider_request(job_request.spider, job_request.urls, job_request.args)
    svc = services()
    job = submit_job_request(svc.db, celery_app(), svc.settings, job_request, user.id)
    # Rendered by ``accepted_body`` rather than JobSchema (which documents it): the answer
    # ``job_shortcut`` gives, byte for byte.
    response = current_app.response_class(
        accepted_body(current_app, job), 202, mimetype="application/json"
    )
    response.headers["Location"] = url_for("scrape_jobs.get_job", job_id=job.id)
    return response


def _visible_job(job_id: str, user: User) -> ScrapeJob:
    job = db_session().get(ScrapeJob, job_id)
    if job is None or (not user.is_admin and job.created_by != user.id):
        raise Problem(404, "not-found", f"No scrape job {job_id}.")
    return job


@blp.route("/scrape-jobs")
@blp.arguments(JobFilter, location="query")
@blp.response(200, JobPage)
def list_jobs(args: dict[str, Any]) -> ResponseReturnValue:
    """Your jobs, newest first (admins see everyone's)."""
    user = current_user()
    query = select(ScrapeJob)
    if not user.is_admin:
        query = query.where(ScrapeJob.created_by == user.id)
    if "status" in args:
        query = query.where(ScrapeJob.status == args["status"])
    if "spider" in args:
        query = query.where(ScrapeJob.spider == args["spider"])
    if "created_after" in args:
        query = query.where(ScrapeJob.created_at >= args["created_after"])
    if "created_before" in args:
        query = query.where(ScrapeJob.created_at < args["created_before"])
    session = db_session()
    with session.begin():
        items, next_cursor = paginate(
            session, query, _NEWEST_FIRST, cursor=args["cursor"], limit=args["limit"]
        )
    return {"items": items, "next_cursor": next_cursor}


@blp.route("/scrape-jobs/<string:job_id>")
@blp.arguments(JobWait, location="query")
@blp.response(200, JobSchema)
def get_job(args: dict[str, Any], job_id: str) -> ResponseReturnValue:
    """One job with its stats; with ``wait``, answered once it has ended or after that long."""
    user = current_user()
    session = db_session()
    with session.begin():
        job = _visible_job(job_id, user)
    if args["wait"] > 0 and not JobStatus(job.status).finished:
        wait_until_finished(
            job_id,
            time.monotonic() + args["wait"],
            lambda: _has_finished(job_id),
            job_end_watcher(current_app, services().settings),
        )
        with session.begin():
            session.expire_all()
            job = _visible_job(job_id, user)
    return job


def _has_finished(job_id: str) -> bool:
    """The job's status now (one indexed read, its own short transaction); gone counts."""
    session = db_session()
    with session.begin():
        status = session.scalar(select(ScrapeJob.status).where(ScrapeJob.id == job_id))
    return status is None or JobStatus(status).finished


@blp.route("/scrape-jobs/<string:job_id>/cancel", methods=["POST"])
@blp.response(200, JobSchema)
def cancel(job_id: str) -> ResponseReturnValue:
    """Stop a job: queued chunks never start, running ones stop within seconds."""
    user = current_user()
    session = db_session()
    with session.begin():
        _visible_job(job_id, user)
        try:
            ended_now = cancel_job(session, job_id)
        except JobAlreadyFinished:
            raise Problem(409, "job-finished", f"Scrape job {job_id} has already ended.") from None
    if ended_now is not None:  # nothing was running: requests waiting on it answer now
        svc = services()
        announce(svc.redis, svc.settings.redis_prefix, ended=[job_id])
    with session.begin():
        session.expire_all()
        return _visible_job(job_id, user)


@blp.route("/scrape-jobs/<string:job_id>/items")
@blp.arguments(PageArgs, location="query")
@blp.response(200, ItemPage)
def job_items(args: dict[str, Any], job_id: str) -> ResponseReturnValue:
    """The job's items: the products it scraped or found fresh in storage.

    In the spiders' item field names, with each product's latest stored values; a product a
    later job scraped again stays among this job's items, and a URL answered from a stored copy
    younger than ``max_age`` (not fetched) is an item as well.
    """
    user = current_user()
    session = read_session()
    with session.begin():
        query = (
            select(ScrapedProduct)
            .join(ScrapeJobProduct, ScrapeJobProduct.product_id == ScrapedProduct.id)
            .where(ScrapeJobProduct.job_id == job_id)
        )
        if not user.is_admin:
            # Someone else's job has an empty page here, then a 404 below: the check rides
            # along with the page instead of costing a transaction of its own.
            mine = select(ScrapeJob.id).where(ScrapeJob.id == job_id)
            query = query.where(mine.where(ScrapeJob.created_by == user.id).exists())
        items, next_cursor = paginate(
            session, query, _BY_ID, cursor=args["cursor"], limit=args["limit"]
        )
    if not items:  # an unknown job, someone else's, or one with no items (yet)
        with db_session().begin():
            _visible_job(job_id, user)
    return {"items": items, "next_cursor": next_cursor}


@blp.route("/spiders")
@blp.response(200, SpiderList)
def list_spiders() -> ResponseReturnValue:
    """Every spider with the JSON Schema of its arguments."""
    return {"items": [spider_catalog.describe(name) for name in spider_catalog.spider_names()]}
