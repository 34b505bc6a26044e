"""Scrapyd's JSON API at the server root, for clients and dashboards that speak it.

The platform shows itself as one project, ``shelfwatch``, whose one version is the
platform's own; its spiders ship with it, so eggs cannot be added or deleted. A job
scheduled here is an ordinary scrape job: Scrapyd's ``jobid`` is its id under
``/api/v1/scrape-jobs/{id}``. Users authenticate with HTTP basic auth (email and password);
everyone but an admin sees only their own jobs. Answers are Scrapyd's: JSON with
``status`` "ok" or "error" and ``node_name``; errors of the request answer HTTP 200 as in
Scrapyd, authentication 401 and rate limits 429.

Not in the OpenAPI document: its problem+json contract does not hold for this protocol.
"""

from __future__ import annotations

import math
import re
import socket
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any

from flask import Response, g, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy import Select, func, select
from werkzeug.exceptions import HTTPException

from models import ScrapeJob
from models.job_ids import JobIdInvalid, JobIdTaken, create_job_with_id
from models.jobs import JobAlreadyFinished, JobNotFound, cancel_job, create_job
from models.scraping import JobStatus
from models.users import User
from tasks.dispatch import submit_chunks
from webapi import spider_catalog
from webapi.api import Blueprint
from webapi.basic_auth import account_key, basic_auth_user
from webapi.celery_client import celery_app
from webapi.crawl_settings import SettingRefused, parse_setting
from webapi.problems import Problem
from webapi.ratelimit import limiter
from webapi.security import public
from webapi.services import db_session, services
from webapi.submit_limit import check_submit_rate

PROJECT = "shelfwatch"
# Scrapyd keeps this many finished jobs (its ``finished_to_keep``); so does listjobs here.
FINISHED_TO_KEEP = 100
UNFINISHED_LISTED = 1000
_SCHEDULE_FIELDS = ("project", "spider", "_version", "jobid", "priority", "setting")
_PENDING, _RUNNING = JobStatus.QUEUED.value, JobStatus.RUNNING.value
_FINISHED = [status.value for status in JobStatus if status.finished]


class _Undocumented(Blueprint):
    def register_views_in_doc(self, *_args: Any, **_kwargs: Any) -> None:
        return None


blp = _Undocumented("scrapyd", __name__, description="Scrapyd-compatible API")
limiter.limit(
    lambda: services().settings.login_rate_limit,
    key_func=account_key,
    deduct_when=lambda response: response.status_code == 401,
)(blp)


class ScrapydError(Exception):
    """A request Scrapyd would refuse: answered ``{"status": "error", "message": ...}``."""


def _answer(body: dict[str, Any], status: int = 200) -> Response:
    response = jsonify({"node_name": socket.gethostname(), **body})
    response.status_code = status
    return response


def _ok(**body: Any) -> Response:
    return _answer({"status": "ok", **body})


@blp.errorhandler(ScrapydError)
def _scrapyd_error(error: ScrapydError) -> Response:
    return _answer({"status": "error", "message": str(error)})


@blp.errorhandler(Problem)
def _problem(problem: Problem) -> Response:
    response = _answer({"status": "error", "message": problem.detail}, problem.status)
    response.headers.update(problem.headers)
    return response


@blp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> Response:
    # Flask-Limiter adds Retry-After to a 429 in its after_request hook.
    return _answer({"status": "error", "message": error.description}, error.code or 500)


@blp.before_request
def _authenticate() -> Response | None:
    user = basic_auth_user()
    if user is None:
        response = _answer({"status": "error", "message": "Unauthorized"}, 401)
        response.headers["WWW-Authenticate"] = 'Basic realm="shelfwatch"'
        return response
    g.scrapyd_user = user
    return None


def _user() -> User:
    return g.scrapyd_user  # type: ignore[no-any-return]


def _param(name: str, *, required: bool = True) -> str | None:
    value = request.values.get(name)
    if value is None and required:
        raise ScrapydError(f"'{name}' parameter is required")
    return value


def _check_project(required: bool = True) -> None:
    project = _param("project", required=required)
    if project is not None and project != PROJECT:
        raise ScrapydError(f"project '{project}' not found")


def _platform_version() -> str:
    return version("shelfwatch")


def _check_version() -> None:
    wanted = request.values.get("_version")
    if wanted and wanted != _platform_version():
        raise ScrapydError(f"version '{wanted}' not found")


def _visible(query: Select[Any]) -> Select[Any]:
    user = _user()
    return query if user.is_admin else query.where(ScrapeJob.created_by == user.id)


@blp.route("/daemonstatus.json")
@public
def daemon_status() -> ResponseReturnValue:
    query = _visible(select(ScrapeJob.status, func.count()).group_by(ScrapeJob.status))
    with db_session().begin():
        counts = {state: count for state, count in db_session().execute(query)}
    finished = sum(counts.get(status, 0) for status in _FINISHED)
    return _ok(pending=counts.get(_PENDING, 0), running=counts.get(_RUNNING, 0), finished=finished)


@blp.route("/listprojects.json")
@public
def list_projects() -> ResponseReturnValue:
    return _ok(projects=[PROJECT])


@blp.route("/listversions.json")
@public
def list_versions() -> ResponseReturnValue:
    _check_project()
    return _ok(versions=[_platform_version()])


@blp.route("/listspiders.json")
@public
def list_spiders() -> ResponseReturnValue:
    _check_project()
    _check_version()
    return _ok(spiders=spider_catalog.spider_names())


@blp.route("/schedule.json", methods=["POST"])
@public
def schedule() -> ResponseReturnValue:
    _check_project()
    _check_version()
    spider = _param("spider") or ""
    if spider not in spider_catalog.spider_names():
        raise ScrapydError(f"spider '{spider}' not found")
    args = {key: request.form[key] for key in request.form if key not in _SCHEDULE_FIELDS}
    urls = [url for url in re.split(r"[\s,]+", args.pop("urls", "")) if url]
    if not urls:
        raise ScrapydError("'urls' parameter is required (start URLs, comma separated)")
    job_fields = {
        "spider": spider,
        "urls": urls,
        "args": args,
        "max_age": _max_age(args.pop("max_age", None)),
        "priority": _priority(request.form.get("priority")),
        "created_by": _user().id,
        "chunk_size": services().settings.scrape_chunk_size,
    }
    _check_spider_args(spider, args, urls)
    crawl_settings = _crawl_settings(request.form.getlist("setting"))
    check_submit_rate(_user().id)
    return _ok(jobid=_create(request.form.get("jobid"), job_fields, crawl_settings))


def _create(job_id: str | None, job_fields: dict[str, Any], crawl_settings: dict[str, Any]) -> str:
    session = db_session()
    with session.begin():
        try:
            if job_id:
                job, chunks = create_job_with_id(session, job_id, **job_fields)
            else:
                job, chunks = create_job(session, **job_fields)
        except JobIdInvalid:
            raise ScrapydError(f"jobid '{job_id}' is not a UUID (e.g. {_EXAMPLE_ID})") from None
        except JobIdTaken:
            raise ScrapydError(f"jobid '{job_id}' is already used") from None
        job.settings = crawl_settings
        created = job.id
    # After commit: a worker that takes the message at once finds the rows.
    submit_chunks(celery_app(), chunks)
    return created


_EXAMPLE_ID = "1b4e28ba-2fa1-41d2-883f-0016d3cca427"


def _max_age(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not raw.isdigit() or int(raw) > 10**9:
        raise ScrapydError("max_age must be a whole number of seconds")
    return int(raw)


def _priority(raw: str | None) -> int:
    """Scrapyd's float priority (higher runs sooner) as the platform's 0 to 9."""
    try:
        priority = float(raw or 0)
    except ValueError:
        priority = math.nan
    if not math.isfinite(priority):
        raise ScrapydError(f"priority is invalid: {raw!r}")
    return int(max(0, min(9, round(priority))))


def _check_spider_args(spider: str, args: dict[str, Any], urls: list[str]) -> None:
    try:
        spider_catalog.validate_args(spider, args, urls)
    except spider_catalog.SpiderArgsInvalid as error:
        raise ScrapydError(f"{error.field.removeprefix('args.')}: {error.message}") from None
    refused = spider_catalog.refused_url(urls, services().settings.ssrf_allowed_networks)
    if refused is not None:
        _index, url, reason = refused
        raise ScrapydError(f"URL {url} may not be crawled: {reason}")


def _crawl_settings(pairs: list[str]) -> dict[str, Any]:
    try:
        return dict(parse_setting(pair) for pair in pairs)
    except SettingRefused as error:
        raise ScrapydError(str(error)) from None


@blp.route("/cancel.json", methods=["POST"])
@public
def cancel() -> ResponseReturnValue:
    _check_project()
    job_id = _param("job") or ""
    session = db_session()
    with session.begin():
        job = session.get(ScrapeJob, job_id)
        if job is None or not (_user().is_admin or job.created_by == _user().id):
            return _ok(prevstate=None)
        prevstate = _STATE_NAMES.get(job.status)
        try:
            cancel_job(session, job_id)
        except (JobAlreadyFinished, JobNotFound):
            prevstate = None
    return _ok(prevstate=prevstate)


_STATE_NAMES = {_PENDING: "pending", _RUNNING: "running"}


@blp.route("/status.json")
@public
def status() -> ResponseReturnValue:
    _check_project(required=False)
    job_id = _param("job") or ""
    with db_session().begin():
        state = db_session().scalar(
            _visible(select(ScrapeJob.status).where(ScrapeJob.id == job_id))
        )
    if state is None:
        return _ok(currstate=None)
    return _ok(currstate=_STATE_NAMES.get(state, "finished"))


@blp.route("/listjobs.json")
@public
def list_jobs() -> ResponseReturnValue:
    _check_project(required=False)
    newest = ScrapeJob.created_at.desc()
    with db_session().begin():
        pending = _jobs(_visible(select(ScrapeJob).where(ScrapeJob.status == _PENDING)), newest)
        running = _jobs(_visible(select(ScrapeJob).where(ScrapeJob.status == _RUNNING)), newest)
        finished = _jobs(
            _visible(select(ScrapeJob).where(ScrapeJob.status.in_(_FINISHED))),
            ScrapeJob.finished_at.desc(),
            limit=FINISHED_TO_KEEP,
        )
        return _ok(
            pending=[_pending(job) for job in pending],
            running=[_running(job) for job in running],
            finished=[_finished(job) for job in finished],
        )


def _jobs(query: Select[Any], order: Any, *, limit: int = UNFINISHED_LISTED) -> list[ScrapeJob]:
    return list(db_session().scalars(query.order_by(order, ScrapeJob.id).limit(limit)))


def _pending(job: ScrapeJob) -> dict[str, Any]:
    return {
        "project": PROJECT,
        "spider": job.spider,
        "id": job.id,
        "version": None,
        "settings": job.settings or {},
        "args": {"urls": ",".join(job.urls or []), **(job.args or {})},
    }


def _running(job: ScrapeJob) -> dict[str, Any]:
    return {
        "project": PROJECT,
        "spider": job.spider,
        "id": job.id,
        "pid": None,
        "start_time": _time(job.started_at),
        "log_url": None,
        "items_url": f"/api/v1/scrape-jobs/{job.id}/items",
    }


def _finished(job: ScrapeJob) -> dict[str, Any]:
    """Scrapyd's fields, and the job's own final status (succeeded, partial, failed…)."""
    running = _running(job)
    del running["pid"]
    return {**running, "end_time": _time(job.finished_at), "status": job.status}


def _time(moment: datetime | None) -> str | None:
    """Scrapyd's ``str(datetime)`` form, in UTC."""
    return str(moment.astimezone(UTC).replace(tzinfo=None)) if moment else None


@blp.route("/addversion.json", methods=["POST"])
@blp.route("/delversion.json", methods=["POST"])
@blp.route("/delproject.json", methods=["POST"])
@public
def deploy() -> ResponseReturnValue:
    raise ScrapydError(
        f"spiders ship with the {PROJECT} platform: projects and versions cannot be "
        "added or deleted"
    )
