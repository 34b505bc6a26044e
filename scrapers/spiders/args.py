"""Typed spider arguments: pydantic models that validate ``-a`` strings and programmatic values
alike and publish a JSON Schema for the API.

scrapy-spider-metadata's ``Args[Params]`` builds the same schema from a pydantic model, but it
re-raises pydantic's multi-line ``ValidationError`` (after logging it), which ``scrapy crawl``
prints as a traceback. Here a failure becomes one `SpiderArgumentError` naming the argument,
and the schema is the model's own ``model_json_schema()``, so the dependency adds nothing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ModelT = TypeVar("ModelT", bound=BaseModel)


class SpiderArgumentError(ValueError):
    """A spider argument is missing or invalid; `argument` names it."""

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(f"argument {argument!r}: {message}")
        self.argument = argument
        self.message = message


def parse_arguments(model: type[ModelT], values: dict[str, Any]) -> ModelT:
    """Validate ``values`` against ``model``; raise `SpiderArgumentError` on the first error."""
    try:
        return model.model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        argument = ".".join(str(part) for part in first["loc"]) or "arguments"
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "unknown argument"
        raise SpiderArgumentError(argument, message) from None


def split_urls(value: object) -> object:
    """A string of URLs separated by whitespace or commas becomes a list."""
    if isinstance(value, str):
        return [part for part in re.split(r"[\s,]+", value) if part]
    return value


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    return url


def split_patterns(value: object) -> object:
    """Patterns are separated by whitespace (regular expressions may contain commas)."""
    if isinstance(value, str):
        return value.split()
    return value


class CrawlArgs(BaseModel):
    """Arguments every spider takes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    urls: list[str] = Field(
        default_factory=list,
        title="URLs",
        description="Start URLs, separated by whitespace or commas (or a list).",
        json_schema_extra={"widget": "textarea"},
    )
    urls_file: Path | None = Field(
        default=None, title="URLs file", description="A file with one start URL a line."
    )
    job_id: str | None = Field(
        default=None,
        title="Job id",
        description="The scrape job the stored rows belong to.",
        max_length=36,
    )
    max_age: Annotated[int, Field(ge=0)] | None = Field(
        default=None,
        title="Maximum age (seconds)",
        description="Skip URLs stored more recently than this; their stored data is reused.",
    )

    _split_urls = field_validator("urls", mode="before")(split_urls)

    @field_validator("urls")
    @classmethod
    def _valid_urls(cls, urls: list[str]) -> list[str]:
        return [_check_url(url) for url in urls]

    @model_validator(mode="after")
    def _urls_given(self) -> CrawlArgs:
        if not self.urls and self.urls_file is None:
            raise ValueError("give urls or urls_file")
        return self

    def start_urls(self) -> list[str]:
        """The URLs given directly, then those of ``urls_file``, without repeats."""
        urls = list(self.urls)
        if self.urls_file is not None:
            try:
                lines = self.urls_file.read_text(encoding="utf-8").splitlines()
            except OSError as error:
                raise SpiderArgumentError("urls_file", error.strerror or str(error)) from None
            for line in lines:
                line = line.strip()
                if line and not line.startswith("#"):
                    try:
                        urls.append(_check_url(line))
                    except ValueError as error:
                        raise SpiderArgumentError("urls_file", str(error)) from None
        return list(dict.fromkeys(urls))


class ProductArgs(CrawlArgs):
    """Arguments of the ``product`` spider: one item per product page URL."""


class SitemapArgs(CrawlArgs):
    """Arguments of the ``sitemap`` spider."""

    include: list[str] = Field(
        default_factory=list,
        title="Include patterns",
        description="Regular expressions; a page URL must match one (all pages when empty).",
    )
    exclude: list[str] = Field(
        default_factory=list,
        title="Exclude patterns",
        description="Regular expressions; a page URL matching one is skipped.",
    )
    limit: int = Field(
        default=1000, ge=1, le=1_000_000, title="Page limit", description="Product pages at most."
    )

    _split_patterns = field_validator("include", "exclude", mode="before")(split_patterns)

    @field_validator("include", "exclude")
    @classmethod
    def _valid_patterns(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"bad regular expression {pattern!r}: {error}") from None
        return patterns


class CatalogArgs(CrawlArgs):
    """Arguments of the ``catalog`` spider."""

    product_css: str | None = Field(
        default=None,
        title="Product link CSS",
        description="CSS selector of product links (else found from structured data/heuristics).",
    )
    product_xpath: str | None = Field(
        default=None, title="Product link XPath", description="XPath of product links."
    )
    next_css: str | None = Field(
        default=None, title="Next page CSS", description="CSS selector of the next-page link."
    )
    max_depth: int = Field(
        default=5, ge=0, le=1000, title="Depth", description="Listing pages followed from a start."
    )
    max_pages: int = Field(
        default=100, ge=1, le=100_000, title="Listing page limit", description="Listing pages."
    )
    limit: int = Field(
        default=1000, ge=1, le=1_000_000, title="Page limit", description="Product pages at most."
    )

    @field_validator("product_css", "next_css")
    @classmethod
    def _valid_css(cls, css: str | None) -> str | None:
        if css is not None:
            from parsel import Selector

            try:
                Selector(text="<html></html>").css(css)
            except Exception as error:  # cssselect raises several unrelated types
                raise ValueError(f"bad CSS selector: {error}") from None
        return css

    @field_validator("product_xpath")
    @classmethod
    def _valid_xpath(cls, xpath: str | None) -> str | None:
        if xpath is not None:
            from parsel import Selector

            try:
                Selector(text="<html></html>").xpath(xpath)
            except ValueError as error:
                raise ValueError(f"bad XPath: {error}") from None
        return xpath
