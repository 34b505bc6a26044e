"""What the API knows of the spiders: names, argument schemas, argument and URL checks.

The spider classes are imported on first use only to read their argument models and the
SSRF guard's pure URL check; the API never imports ``twisted.internet.reactor`` and starts
no crawl.
"""

from __future__ import annotations

from functools import cache
from typing import Any

# Arguments a client may not set: the job gives the URLs, its id and max_age itself, and a
# file path would read files of the worker's machine.
RESERVED_ARGS = ("urls", "urls_file", "job_id", "max_age")


class SpiderArgsInvalid(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@cache
def _spiders() -> dict[str, Any]:
    from scrapers.spiders import SPIDERS

    return dict(SPIDERS)


def spider_names() -> list[str]:
    return sorted(_spiders())


def describe(name: str) -> dict[str, Any]:
    spider = _spiders()[name]
    return {
        "name": name,
        "description": (spider.__doc__ or "").strip().split("\n")[0],
        "args_schema": args_schema(name),
    }


@cache
def args_schema(name: str) -> dict[str, Any]:
    """The spider's argument schema without the arguments the job itself sets."""
    schema = dict(_spiders()[name].args_json_schema())
    schema["properties"] = {
        key: value
        for key, value in schema.get("properties", {}).items()
        if key not in RESERVED_ARGS
    }
    schema["required"] = [key for key in schema.get("required", []) if key not in RESERVED_ARGS]
    return schema


def validate_args(name: str, args: dict[str, Any], urls: list[str]) -> None:
    """Raise ``SpiderArgsInvalid`` naming the bad field (``args.<name>`` or ``urls``)."""
    from scrapers.spiders.args import SpiderArgumentError, parse_arguments

    for key in RESERVED_ARGS:
        if key in args:
            raise SpiderArgsInvalid(f"args.{key}", "set by the job; not allowed in args")
    try:
        parse_arguments(_spiders()[name].Params, {**args, "urls": urls})
    except SpiderArgumentError as error:
        argument = error.argument.split(".")[0]
        field = "urls" if argument == "urls" else f"args.{error.argument}"
        raise SpiderArgsInvalid(field, error.message) from None


def refused_url(urls: list[str], allowed_networks: list[str]) -> tuple[int, str, str] | None:
    """The first URL the SSRF guard refuses already from its text: (index, url, reason)."""
    from scrapers.middlewares.ssrf import check_url, parse_networks

    allowed = parse_networks(allowed_networks)
    for index, url in enumerate(urls):
        reason = check_url(url, allowed)
        if reason is not None:
            return index, url, reason
    return None
