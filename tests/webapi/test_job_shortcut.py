"""Plain scrape-job submissions answered before Flask (``webapi.job_shortcut``): the same
answers, rows and messages as the Flask path, the rate limit counted once, and every unusual
request or refusal left to Flask."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy import Text, cast, func, select, text
from sqlalchemy.exc import OperationalError
from werkzeug.test import Client, TestResponse

from models import Database, ScrapeChunk, ScrapeJob
from shelfwatch.config import Settings
from tasks import dispatch
from tests.conftest import Account
from tests.services import REDIS_URL
from tests.webapi.test_cache_hits import layer_of, watch_flask
from tests.webapi.test_metrics import scrape, value
from webapi import create_app, job_shortcut, job_submission, submit_limit
from webapi.auth_cache import sentinel_key
from webapi.job_shortcut import ScrapeJobShortcut
from webapi.ratelimit import limits_on_every_route

PATH = "/api/v1/scrape-jobs"
PROBLEM = "application/problem+json"
URL = "http://shop.example/p/1"


@pytest.fixture
def settings(base_settings: Settings) -> Settings:
    """Each job's messages sent in its request, not by the coalescer thread: the two paths'
    messages are compared one job at a time (both paths submit through ``submit_chunks``;
    coalescing is tested with the view in test_scrape_jobs and in tests/tasks)."""
    return base_settings.model_copy(update={"scrape_coalesce_max_chunks": 1})


@pytest.fixture
def through_flask(app: Flask) -> list[str]:
    return watch_flask(app)


@pytest.fixture
def submitter(client: FlaskClient, clerk: Account) -> Account:
    """A clerk whose auth record Redis holds (its first request went through Flask)."""
    assert client.get(PATH, headers=clerk.headers).status_code == 200
    return clerk


def post(client: FlaskClient | Client, who: Account, body: Any, **headers: str) -> TestResponse:
    return client.post(PATH, json=body, headers={**who.headers, **headers})


def shortcut_of(app: Flask) -> ScrapeJobShortcut:
    return layer_of(app, ScrapeJobShortcut)


def flask_path(app: Flask) -> Client:
    """A client of the app behind the shortcut: the answer the shortcut's must equal."""
    return Client(shortcut_of(app).wsgi_app)


def without_new_values(answer: TestResponse) -> tuple[Any, ...]:
    """An answer to a fresh submission without what differs between two submissions."""
    body = dict(answer.json)
    del body["id"], body["created_at"]
    headers = [(k, v) for k, v in answer.headers.items() if k not in ("Location",)]
    return answer.status, headers, body


def job_rows(database: Database, job_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The job's row and its chunks' rows (JSON columns as stored text), without what
    differs between two jobs."""
    jobs, chunks = ScrapeJob.__table__, ScrapeChunk.__table__
    scraping = {"mapper": ScrapeJob}
    as_text = [
        cast(column, Text).label(f"{column.key}_text") for column in (jobs.c.urls, jobs.c.args)
    ]
    with database.transaction() as session:
        job = session.execute(
            select(jobs, *as_text).where(jobs.c.id == job_id), bind_arguments=scraping
        ).mappings()
        chunk_rows = session.execute(
            select(chunks, cast(chunks.c.urls, Text).label("urls_text"))
            .where(chunks.c.job_id == job_id)
            .order_by(chunks.c.seq),
            bind_arguments=scraping,
        ).mappings()
        job_row = {k: v for k, v in job.one().items() if k not in ("id", "created_at")}
        parts = [{k: v for k, v in row.items() if k not in ("id", "job_id")} for row in chunk_rows]
    return job_row, parts


def far_chunk_ids(database: Database) -> None:
    """Chunk ids far from every count in a message, so that they can be told apart."""
    with database.scraping.begin() as connection:
        connection.execute(
            text("SELECT setval(pg_get_serial_sequence('scraping.scrape_chunks', 'id'), 10000000)")
        )


def chunk_messages(settings: Settings, database: Database, job_id: str) -> list[dict[str, Any]]:
    """The messages naming the job waiting in the broker: queue, task, arguments and their
    repr, with the job's and its chunks' ids replaced by placeholders."""
    with database.transaction() as session:
        chunk_ids = session.scalars(select(ScrapeChunk.id).where(ScrapeChunk.job_id == job_id))
        ids = re.compile("|".join([re.escape(job_id), *(rf"\b{n}\b" for n in chunk_ids)]))

    def placeholders(text: str) -> str:
        return ids.sub(lambda found: "<job>" if found[0] == job_id else "<chunk>", text)

    broker = redis.Redis.from_url(REDIS_URL)
    queue = settings.queue("scrape")
    found = []
    for key in sorted(broker.scan_iter(match=f"{queue}*")):
        for raw in broker.lrange(key, 0, -1):
            if job_id.encode() not in raw:
                continue
            message = json.loads(raw)
            found.append(
                {
                    "queue": key.decode().removeprefix(queue),
                    "task": message["headers"]["task"],
                    "body": placeholders(base64.b64decode(message["body"]).decode()),
                    "argsrepr": placeholders(message["headers"]["argsrepr"]),
                    "priority": message["properties"].get("priority"),
                }
            )
    return found


def job_count(database: Database) -> int:
    with database.transaction() as session:
        return session.scalar(select(func.count()).select_from(ScrapeJob))


BODIES = [
    {"spider": "product", "urls": [URL]},
    {"spider": "product", "urls": [URL], "args": {}, "max_age": None, "priority": 0},
    {"spider": "product", "urls": [URL, "http://127.0.0.1:8/p/2"], "max_age": 3600},
    {"spider": "product", "urls": [URL], "priority": 9, "max_age": 0},
    {"spider": "sitemap", "urls": ["http://shop.example/sitemap.xml"], "args": {"limit": 5}},
    {"spider": "product", "urls": [f"http://shop.example/p/{n}" for n in range(120)]},
]


@pytest.mark.parametrize("body", BODIES)
def test_a_plain_submission_is_answered_before_flask_as_flask_answers_it(
    through_flask, app, client, submitter, database, settings, body
) -> None:
    far_chunk_ids(database)
    seen = len(through_flask)
    early = post(client, submitter, body)
    assert len(through_flask) == seen, "a plain submission went through Flask"
    assert early.status_code == 202, early.json
    late = post(flask_path(app), submitter, body)
    assert len(through_flask) == seen + 1
    assert without_new_values(early) == without_new_values(late)
    assert early.headers["Location"] == f"{PATH}/{early.json['id']}"
    assert late.headers["Location"] == f"{PATH}/{late.json['id']}"
    assert job_rows(database, early.json["id"]) == job_rows(database, late.json["id"])
    messages = chunk_messages(settings, database, early.json["id"])
    assert messages
    assert messages == chunk_messages(settings, database, late.json["id"])


@pytest.mark.parametrize("body", BODIES)
def test_the_answer_is_the_jobs_rendering_byte_for_byte(client, submitter, body) -> None:
    """The 202 body is what ``JobSchema`` renders for the job (its ``GET``)."""
    early = post(client, submitter, body)
    stored = client.get(early.headers["Location"], headers=submitter.headers)
    assert stored.status_code == 200
    assert early.get_data() == stored.get_data()
    assert early.content_type == stored.content_type == "application/json"


def test_admins_submit_before_flask(through_flask, client, admin) -> None:
    assert client.get(PATH, headers=admin.headers).status_code == 200
    seen = len(through_flask)
    assert post(client, admin, BODIES[0]).status_code == 202
    assert len(through_flask) == seen


@pytest.mark.parametrize(
    ("body", "headers", "status", "type_"),
    [
        ({"spider": "nope", "urls": [URL]}, {}, 400, "validation-error"),
        ({"spider": "product", "urls": []}, {}, 400, "validation-error"),
        ({"spider": "product", "urls": ["ftp://shop.example/x"]}, {}, 400, "validation-error"),
        ({"spider": "product", "urls": [URL], "priority": 10}, {}, 400, "validation-error"),
        ({"spider": "product", "urls": [URL], "max_age": -1}, {}, 400, "validation-error"),
        (
            {"spider": "product", "urls": [URL], "args": {"colour": "r"}},
            {},
            400,
            "validation-error",
        ),
        ({"spider": "product", "urls": [URL], "args": {"urls_file": "/x"}}, {}, 400, None),
        ({"spider": "product", "urls": [URL], "extra": 1}, {}, 400, "validation-error"),
        ({"spider": "product", "urls": [URL], "args": None}, {}, 400, "validation-error"),
        ({"spider": "product", "urls": [URL], "priority": None}, {}, 400, "validation-error"),
        ({"spider": "product", "urls": [""]}, {}, 400, "validation-error"),
        ({"spider": "product", "urls": URL}, {}, 400, "validation-error"),
        ([{"spider": "product", "urls": [URL]}], {}, 400, "validation-error"),
        ({"spider": "product", "urls": [URL, "http://10.1.2.3/"]}, {}, 422, "url-refused"),
        ({"spider": "product", "urls": ["http://169.254.169.254/"]}, {}, 422, "url-refused"),
        ({"spider": "product", "urls": [URL]}, {"Authorization": "Bearer x"}, 401, None),
    ],
)
def test_refusals_are_left_to_flask(
    through_flask, client, submitter, database, body, headers, status, type_
) -> None:
    before = job_count(database)
    seen = len(through_flask)
    answer = post(client, submitter, body, **headers)
    assert len(through_flask) == seen + 1
    assert answer.status_code == status, answer.json
    assert answer.content_type == PROBLEM
    if type_ is not None:
        assert answer.json["type"] == f"/problems/{type_}"
    assert job_count(database) == before


def test_refusals_answer_as_the_flask_path_does(app, client, submitter) -> None:
    for body in (
        {"spider": "nope", "urls": [URL]},
        {"spider": "product", "urls": ["http://10.1.2.3/"]},
        {"spider": "product", "urls": [URL], "priority": 10},
    ):
        early, late = post(client, submitter, body), post(flask_path(app), submitter, body)
        assert (early.status, early.get_data()) == (late.status, late.get_data())
        assert list(early.headers.items()) == list(late.headers.items())


def test_unusual_requests_are_left_to_flask(through_flask, client, submitter) -> None:
    raw = json.dumps(BODIES[0]).encode()
    cases = [
        ({"data": raw, "content_type": "text/plain"}, 415),
        ({"data": raw, "content_type": "application/json; charset=utf-8"}, 202),
        ({"data": b"{not json", "content_type": "application/json"}, 400),
        ({"data": raw, "content_type": "application/json", "query_string": "x=1"}, 202),
        ({"data": raw + b" " * 20_000, "content_type": "application/json"}, 202),
        ({"json": {**BODIES[0], "priority": "3"}}, 202),  # the schema takes a number in text
        ({"json": {**BODIES[0], "max_age": 60.0}}, 202),
        ({"json": BODIES[0], "environ_overrides": {"SCRIPT_NAME": "/shelf"}}, 202),
    ]
    for options, status in cases:
        seen = len(through_flask)
        answer = client.post(PATH, headers=submitter.headers, **options)
        assert len(through_flask) == seen + 1, options
        assert answer.status_code == status, (options, answer.json)
    assert answer.headers["Location"].startswith("/shelf/api/v1/scrape-jobs/")


def test_submitting_without_a_token_is_refused_by_flask(through_flask, client) -> None:
    seen = len(through_flask)
    answer = client.post(PATH, json=BODIES[0])
    assert answer.status_code == 401
    assert len(through_flask) == seen + 1


def test_a_logged_out_token_is_refused_on_the_next_submission(client, submitter) -> None:
    assert post(client, submitter, BODIES[0]).status_code == 202
    assert client.post("/api/v1/auth/logout", headers=submitter.headers).status_code == 204
    answer = post(client, submitter, BODIES[0])
    assert answer.status_code == 401
    assert answer.json["type"] == "/problems/revoked-token"


def test_an_unvouched_revocation_copy_sends_the_submission_to_flask(
    through_flask, client, submitter, settings: Settings
) -> None:
    redis.Redis.from_url(REDIS_URL).delete(sentinel_key(settings.redis_prefix))
    seen = len(through_flask)
    assert post(client, submitter, BODIES[0]).status_code == 202
    assert len(through_flask) == seen + 1


def _limited(app: Flask, settings: Settings, limit: str) -> None:
    app.extensions["shelfwatch"].settings = settings.model_copy(
        update={"scrape_submit_rate_limit": limit}
    )


def test_the_rate_limit_counts_each_submission_once(
    through_flask, app, client, submitter, settings
) -> None:
    _limited(app, settings, "3 per minute")
    seen = len(through_flask)
    assert [post(client, submitter, BODIES[0]).status_code for _ in range(3)] == [202] * 3
    assert len(through_flask) == seen
    refused = post(client, submitter, BODIES[0])
    assert refused.status_code == 429
    assert len(through_flask) == seen  # answered by Flask's handlers, the view not run


def test_a_refusal_left_to_flask_counts_once_as_in_the_view(
    app, client, submitter, settings
) -> None:
    _limited(app, settings, "2 per minute")
    # An unknown spider passes the schema: the view counts it before refusing it.
    assert post(client, submitter, {"spider": "nope", "urls": [URL]}).status_code == 400
    assert post(client, submitter, BODIES[0]).status_code == 202
    assert post(client, submitter, BODIES[0]).status_code == 429


def test_the_429_is_the_views(app, client, submitter, manager, settings) -> None:
    _limited(app, settings, "1 per minute")
    assert client.get(PATH, headers=manager.headers).status_code == 200
    assert post(client, submitter, BODIES[0]).status_code == 202
    assert post(flask_path(app), manager, BODIES[0]).status_code == 202
    early = post(client, submitter, BODIES[0])
    late = post(flask_path(app), manager, BODIES[0])
    assert early.status_code == late.status_code == 429
    assert early.get_data() == late.get_data()
    assert [k for k, _ in early.headers.items()] == [k for k, _ in late.headers.items()]
    assert 1 <= int(early.headers["Retry-After"]) <= 60
    assert early.json["type"] == "/problems/rate-limited"


def test_a_database_error_is_answered_by_flask_without_a_second_run(
    through_flask, client, submitter, database, monkeypatch
) -> None:
    calls = []

    def failing(*args: Any, **kwargs: Any) -> None:
        calls.append(args)
        raise OperationalError("INSERT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(job_submission, "create_job_committed", failing)
    seen = len(through_flask)
    answer = post(client, submitter, BODIES[0])
    assert answer.status_code == 503
    assert answer.content_type == PROBLEM
    assert answer.json["type"] == "/problems/database-unavailable"
    assert answer.headers["Retry-After"] == "1"
    assert len(calls) == 1
    assert len(through_flask) == seen  # the view did not run


def test_a_broker_error_still_accepts_the_job_whose_chunks_stay_queued(
    app, client, submitter, database, monkeypatch
) -> None:
    def failing(*_args: Any) -> None:
        raise BrokerError("broker gone")

    # This module sends in the request (coalescing off): the broker's publish fails there.
    monkeypatch.setattr(dispatch, "send_chunks", failing)
    before = job_count(database)
    early, late = post(client, submitter, BODIES[0]), post(flask_path(app), submitter, BODIES[0])
    assert early.status_code == late.status_code == 202
    assert early.json.keys() == late.json.keys()
    # Committed before the send: the chunks wait queued, and recovery sends them.
    assert job_count(database) == before + 2
    with database.transaction() as session:
        for answer in (early, late):
            chunks = session.scalars(
                select(ScrapeChunk.status).where(ScrapeChunk.job_id == answer.json["id"])
            ).all()
            assert chunks == ["queued"]


def test_a_failing_submit_limit_lets_the_job_through_counted_once(
    through_flask, app, client, submitter, database, monkeypatch
) -> None:
    """As the API's other rate limits do while Redis fails (RATELIMIT_SWALLOW_ERRORS)."""
    calls = []

    def failing(limit: str) -> None:
        calls.append(limit)
        raise redis.ConnectionError("Redis went away")

    monkeypatch.setattr(submit_limit, "_parsed", failing)
    seen = len(through_flask)
    early = post(client, submitter, BODIES[0])
    assert len(through_flask) == seen and len(calls) == 1
    late = post(flask_path(app), submitter, BODIES[0])
    assert early.status_code == late.status_code == 202
    assert len(calls) == 2
    assert job_count(database) == 2


def test_while_redis_is_down_submissions_are_left_to_flask(settings: Settings, admin) -> None:
    down = create_app(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    reached_flask = watch_flask(down)
    client = down.test_client()
    answers = [post(client, admin, BODIES[0]) for _ in range(2)]
    assert len(reached_flask) == 2
    assert shortcut_of(down).auth.paused_until > 0
    # The view's own answer (its submit limit is kept in Redis).
    late = post(flask_path(down), admin, BODIES[0])
    assert [answer.status_code for answer in answers] == [late.status_code] * 2 == [202] * 2
    assert without_new_values(answers[0]) == without_new_values(late)


def test_submissions_are_counted_in_the_metrics(client, submitter) -> None:
    labels = {"method": "POST", "endpoint": PATH, "status": "202"}
    name = "shelfwatch_http_requests_total"
    before = value(scrape(client), name, **labels) or 0
    for _ in range(3):
        assert post(client, submitter, BODIES[0]).status_code == 202
    assert value(scrape(client), name, **labels) == before + 3


def test_submissions_carry_no_rate_limit_headers(app, submitter) -> None:
    """The shortcut relies on the route having no Flask-Limiter limit of its own."""
    assert not limits_on_every_route()
    answer = post(flask_path(app), submitter, BODIES[0])
    assert answer.status_code == 202
    assert not [name for name, _ in answer.headers.items() if name.startswith("X-RateLimit")]


def test_a_submission_marks_its_writer(client, submitter, monkeypatch) -> None:
    marked: list[int] = []
    monkeypatch.setattr(
        job_shortcut, "remember_write", lambda _svc, user_id: marked.append(user_id)
    )
    assert post(client, submitter, BODIES[0]).status_code == 202
    assert marked == [submitter.id]


def test_an_untrusted_host_is_refused_by_flask(through_flask, app, client, submitter) -> None:
    assert post(client, submitter, BODIES[0]).status_code == 202  # the rule remembered
    app.config["TRUSTED_HOSTS"] = ["localhost"]
    refused = client.post(
        PATH, json=BODIES[0], headers={**submitter.headers, "Host": "elsewhere.example"}
    )
    assert refused.status_code == 400
    assert refused.content_type == PROBLEM
