"""The HTTP shell: parse, authorise, call the domain, render."""

from webapi.app import create_app

__all__ = ["create_app"]
