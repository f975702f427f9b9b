"""Command line: `python -m app.cli <command>` (migrate, data, prepare, serve, ...)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.exc import OperationalError

from app.config import PROJECT_ROOT, get_settings
from app.db import get_sessionmaker


def alembic_config(url: str | None = None) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(url: str | None = None) -> None:
    """Upgrade the database to the latest migration."""
    command.upgrade(alembic_config(url or get_settings().database_url), "head")


def load_data(path: Path | None = None) -> None:
    """Load the reference snapshot; the same snapshot twice changes nothing."""
    from app.services import reference

    settings = get_settings()
    path = path or settings.data_dir / reference.SNAPSHOT_FILE
    with get_sessionmaker()() as session, session.begin():
        version, changed = reference.load_snapshot(session, path=path)
    state = "loaded" if changed else "already loaded, nothing changed"
    print(f"reference data {path.name}: version {version} {state}")


def refresh_data(out: Path | None, dry_run: bool) -> int:
    """Fetch the indicators from the World Bank API into a new snapshot file."""
    from app import worldbank

    current = get_settings().data_dir / "country_indicators.csv"
    with worldbank.make_client(timeout=30) as client:
        try:
            report = worldbank.refresh_snapshot(current, out or current, client, dry_run=dry_run)
        except worldbank.RefreshError as exc:
            print(f"refresh failed; snapshot unchanged: {exc}", file=sys.stderr)
            return 1
    print(report)
    return 0


def prepare() -> None:
    """Everything `make run` needs before serving: migrate, load data, make sure a classifier is active."""
    migrate()
    print("database migrated to head")
    load_data()
    from app.services import registry

    with get_sessionmaker()() as session, session.begin():
        print(registry.ensure_active(session, settings=get_settings()))


def serve(host: str, port: int, workers: int) -> None:
    import uvicorn

    print(f"serving on http://{host}:{port} (Swagger UI at http://{host}:{port}/docs)")
    uvicorn.run(
        "app.main:app", host=host, port=port, workers=workers, log_level="info", timeout_graceful_shutdown=10
    )


def main(argv: Sequence[str] | None = None) -> int:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m app.cli", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="upgrade the database to head")
    data = sub.add_parser("data", help="reference data")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    load = data_sub.add_parser("load", help="load a snapshot file into the database")
    load.add_argument("--file", type=Path, default=None)
    refresh = data_sub.add_parser("refresh", help="fetch a new snapshot from the World Bank API")
    refresh.add_argument("--out", type=Path, default=None)
    refresh.add_argument("--dry-run", action="store_true")
    sub.add_parser("prepare", help="migrate, load data, train the first classifier if needed")
    srv = sub.add_parser("serve", help="run the HTTP server")
    srv.add_argument("--host", default=settings.host)
    srv.add_argument("--port", type=int, default=settings.port)
    srv.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)

    from app.errors import ServiceError

    try:
        if args.command == "migrate":
            migrate()
        elif args.command == "data" and args.data_command == "load":
            load_data(args.file)
        elif args.command == "data" and args.data_command == "refresh":
            return refresh_data(args.out, args.dry_run)
        elif args.command == "prepare":
            prepare()
        elif args.command == "serve":
            serve(args.host, args.port, args.workers)
    except OperationalError as exc:
        print(
            f"error: cannot reach the database ({settings.database_url.split('@')[-1]}): {exc.orig}",
            file=sys.stderr,
        )
        return 2
    except ServiceError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
