"""The ``shelfwatch`` command."""

from __future__ import annotations

import click

from shelfwatch.config import load_settings
from shelfwatch.crawl_cli import crawl


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """shelfwatch: inventory and distributed scraping."""


@main.command()
def migrate() -> None:
    """Apply every database migration (PostgreSQL or the embedded SQLite files)."""
    from shelfwatch import migrate as migrations

    migrations.upgrade(load_settings())
    click.echo("database is at the latest revision")


@main.command()
@click.option(
    "--only",
    multiple=True,
    type=click.Choice(["api", "worker", "beat", "flower"]),
    help="Start only these parts (repeatable); default: all of them.",
)
def up(only: tuple[str, ...]) -> None:
    """Migrate, then run the API, a worker, beat and Flower until Ctrl-C."""
    from shelfwatch import migrate as migrations
    from shelfwatch import up as platform

    settings = load_settings()
    click.echo(f"shelfwatch: {settings.effective_mode} mode, data in {settings.resolved_data_dir}")
    migrations.upgrade(settings)
    settings.jwt_secret()  # fail before starting anything if production lacks SECRET_KEY
    click.echo(f"shelfwatch: API on http://{settings.host}:{settings.port}/api/docs")
    click.echo(f"shelfwatch: Flower on http://{settings.host}:{settings.flower_port}/")
    raise SystemExit(platform.run(settings, parts=set(only) or None))


@main.command("create-admin")
@click.option("--email", prompt=True, help="The admin's email address.")
@click.option(
    "--password",
    help="The password (prompted, hidden, when missing for a new account).",
)
def create_admin(email: str, password: str | None) -> None:
    """Create an admin, or promote an existing user to admin."""
    from models import create_database
    from models.accounts import create_or_promote_admin, find_by_email
    from shelfwatch import migrate as migrations

    settings = load_settings()
    migrations.upgrade(settings)
    db = create_database(settings)
    with db.session() as session:
        exists = find_by_email(session, email) is not None
    if not exists and not password:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if password is not None and len(password) < 8:
        raise click.BadParameter("at least 8 characters", param_hint="--password")
    with db.transaction() as session:
        user = create_or_promote_admin(session, email, password)
        session.flush()
        click.echo(f"{'promoted' if exists else 'created'} admin {user.email} (id {user.id})")
    db.dispose()


main.add_command(crawl)


if __name__ == "__main__":
    main()
