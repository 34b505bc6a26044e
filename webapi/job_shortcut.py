"""Plain scrape-job submissions answered before Flask.

Through Flask, a one-URL ``POST /api/v1/scrape-jobs`` spent most of its CPU around the job:
the request context, Flask-Limiter's hooks (the route has no limit of its own), webargs,
marshmallow and flask-smorest, a transient ``User``. This WSGI middleware submits a plainly
valid job itself, with the functions the view calls:

- the caller cleared by ``early_auth`` (the app's memo of verified tokens, then one
  ``AuthCache.lookup`` MGET), as ``security`` would accept it;
- the body parsed as webargs parses it and loaded by ``plainly_valid_request`` (what
  ``JobCreate`` loads for such a body), then ``check_spider_request`` (spider, arguments,
  SSRF guard);
- one submission counted against the user's limit (``submit_limit.counted_submission``);
  over it (or if Redis fails), the view's answer is given by Flask's error handlers,
  without counting again;
- ``job_submission.submit_job_request`` (the rows, then the chunk messages) and its 202
  ``accepted_body``, the request counted in the metrics and the writer remembered for
  replica reads like any write.

Anything else goes to Flask, which stays the one place that refuses: another method, path or
query string, a body that is not small plain JSON with a Content-Length, no or a bad token, a
caller ``early_auth`` does not clear, an app mounted under a path prefix, and every request
the view's checks refuse (unknown spider, bad arguments, a refused URL): nothing was counted
or written, and Flask checks it again and answers. An error while submitting (the database
or the broker) is answered by Flask's error handlers without submitting again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import Flask
from werkzeug.routing import Rule

from models.scraping import ScrapeJob
from webapi.celery_client import celery_app_of
from webapi.early_auth import EarlyAuth
from webapi.job_submission import (
    JobRequest,
    accepted_body,
    job_url,
    plainly_valid_request,
    submit_job_request,
)
from webapi.metrics import record_request
from webapi.plain_posts import EndpointRule, WsgiApp, flask_error_answer, plain_json_body
from webapi.problems import Problem
from webapi.replicas import remember_write
from webapi.services import EXTENSION_KEY, Services
from webapi.spider_requests import check_spider_request
from webapi.submit_limit import counted_submission

PATH = "/api/v1/scrape-jobs"
ENDPOINT = "scrape_jobs.submit_job"
ACCEPTED = "202 ACCEPTED"


class ScrapeJobShortcut:
    """Submits plainly valid jobs of cleared callers; everything else to Flask."""

    def __init__(self, app: Flask, wsgi_app: WsgiApp) -> None:
        self._app = app
        self.wsgi_app = wsgi_app
        self.auth = EarlyAuth(app)
        self._rule = EndpointRule(app, ENDPOINT)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST" or environ.get("PATH_INFO") != PATH:
            return self.wsgi_app(environ, start_response)
        svc: Services = self._app.extensions[EXTENSION_KEY]
        prepared = self._prepare(svc, environ)
        if prepared is None:
            return self.wsgi_app(environ, start_response)
        rule, user_id, job_request = prepared
        try:
            job = self._submit(svc, job_request, user_id)
        except Exception as error:  # the view's answer, by Flask's handlers (429, 503, 500)
            return flask_error_answer(self._app, environ, start_response, error)
        body = accepted_body(self._app, job)
        remember_write(svc, user_id)
        record_request(self._app, environ, "POST", rule, 202)
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("Location", job_url(job.id)),
        ]
        start_response(ACCEPTED, headers)
        return [body]

    def _prepare(
        self, svc: Services, environ: dict[str, Any]
    ) -> tuple[Rule, int, JobRequest] | None:
        """The view's rule, the caller's id and the job, if the request is plain, its
        caller cleared and the job passes the view's checks; None leaves it to Flask."""
        if environ.get("SCRIPT_NAME") or not self.auth.usable(svc):
            return None  # under a path prefix, the view's Location starts with it
        claims = self.auth.claims(environ)
        rule = self._rule.matched(environ) if claims is not None else None
        if claims is None or rule is None:
            return None
        job_request = plainly_valid_request(plain_json_body(self._app, environ))
        if job_request is None:
            return None
        try:
            check_spider_request(
                job_request.spider, job_request.urls, job_request.args, svc.settings
            )
        except Problem:
            return None
        caller = self.auth.clear(svc, claims)
        return (rule, caller.user_id, job_request) if caller is not None else None

    def _submit(self, svc: Services, job_request: JobRequest, user_id: int) -> ScrapeJob:
        """What the view does once the request is valid: count the submission (a 429
        problem when over the limit), then submit the job."""
        refused = counted_submission(svc.settings, user_id)
        if refused is not None:
            raise refused
        celery = celery_app_of(self._app)
        return submit_job_request(svc.db, celery, svc.settings, job_request, user_id)
