"""Command line: `python -m app.cli <command>` (migrate, data, prepare, serve, ...)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from alembic import command
from alembic.config import Config
from pydantic import ValidationError
from pydantic_settings import SettingsError
from sqlalchemy.exc import OperationalError, ProgrammingError

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


def preflight() -> None:
    """Refuse to start, with one clear line, when the database is down or required keys are missing."""
    from sqlalchemy import text

    from app.services import api_keys

    settings = get_settings()
    with get_sessionmaker()() as session:
        session.execute(text("SELECT 1"))
        has_keys = any(k.revoked_at is None for k in api_keys.get_all(session))
    if settings.require_api_keys and not has_keys:
        raise SystemExit(
            "error: REQUIRE_API_KEYS=true but no API key exists; create one with `python -m app.cli keys create`"
        )


def keys_command(action: str, name: str | None, scopes: list[str], prefix: str | None) -> None:
    from app.services import api_keys

    with get_sessionmaker()() as session, session.begin():
        if action == "create":
            key, row = api_keys.create(session, name=name or "unnamed", scopes=scopes)
            print(
                f"created key {row.prefix} ({row.name}, scopes {', '.join(row.scopes)}). Shown once:\n{key}"
            )
        elif action == "revoke":
            row = api_keys.revoke(session, prefix=prefix or "")
            print(f"revoked key {row.prefix} ({row.name})")
        else:
            for row in api_keys.get_all(session):
                state = f"revoked {row.revoked_at:%Y-%m-%d}" if row.revoked_at else "active"
                print(f"{row.prefix}  {row.name}  {','.join(row.scopes)}  {state}")


def classifier_command(action: str, out: Path | None, activate: bool | None) -> None:
    from app.services import registry

    settings = get_settings()
    with get_sessionmaker()() as session, session.begin():
        if action == "train":
            result = registry.train(session, settings=settings, activate_new=activate)
            print(
                f"{result['version']}: {result['decision']} ({registry.metrics_headline(result['metrics'])})"
            )
            return
        from scoring import classifier as clf

        row = registry.get_active(session)
        if row is None:
            raise SystemExit(
                "error: no classifier version is active; run `python -m app.cli classifier train`"
            )
        model = clf.load_artefact(
            settings.model_dir / row.artefact_path, row.artefact_sha256, row.library_versions["sklearn"]
        )
        text = f"Version: `{row.version}`\n\n" + clf.model_card_markdown(model)
        if out is None:
            print(text)
        else:
            out.write_text(text, encoding="utf-8")
            print(f"model card written to {out}")


def serve(host: str, port: int, workers: int) -> None:
    import uvicorn

    preflight()
    print(f"serving on http://{host}:{port} (Swagger UI at http://{host}:{port}/docs)")
    uvicorn.run(
        "app.main:app",
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        # The app writes its own JSON access log (app.observability); uvicorn's would only be
        # filtered out, after formatting its arguments for every request.
        access_log=False,
        timeout_graceful_shutdown=10,
    )


def _settings_problem(exc: ValidationError | SettingsError) -> str:
    """The bad settings in one line, each named as its environment variable."""
    if isinstance(exc, SettingsError):  # a value that is not JSON where JSON is expected
        return f"{exc}; a list setting is written as JSON, e.g. CORS_ORIGINS='[\"https://portal.example\"]'"
    return "; ".join(f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number from 1 to 65535, got {text!r}")
    return port


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = get_settings()
    except (ValidationError, SettingsError) as exc:
        print(f"error: invalid setting: {_settings_problem(exc)}", file=sys.stderr)
        return 2
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
    srv.add_argument("--port", type=_port, default=settings.port)
    srv.add_argument("--workers", type=int, default=1)
    keys = sub.add_parser("keys", help="API keys: create (shown once), revoke, list")
    keys.add_argument("action", choices=["create", "revoke", "list"])
    keys.add_argument("--name")
    keys.add_argument("--scope", dest="scopes", action="append", choices=["read", "admin"], default=None)
    keys.add_argument("--prefix", help="the key's prefix (the part after cm_), for revoke")
    cls = sub.add_parser("classifier", help="train a version, or write the active model card")
    cls.add_argument("action", choices=["train", "card"])
    cls.add_argument("--out", type=Path, default=None, help="card: write Markdown here")
    cls.add_argument("--activate", choices=["yes", "no", "auto"], default="auto")
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
        elif args.command == "keys":
            keys_command(args.action, args.name, args.scopes or ["read"], args.prefix)
        elif args.command == "classifier":
            activate = {"yes": True, "no": False, "auto": None}[args.activate]
            classifier_command(args.action, args.out, activate)
    except OperationalError as exc:
        # SQLite creates a missing file on connecting, so an unmigrated database shows as a missing table.
        hint = " (run `python -m app.cli migrate`)" if "no such table" in str(exc.orig) else ""
        print(
            f"error: cannot reach the database ({settings.database_url.split('@')[-1]}): {exc.orig}{hint}",
            file=sys.stderr,
        )
        return 2
    except ProgrammingError as exc:
        if "UndefinedTable" not in type(exc.orig).__name__:
            raise
        # PostgreSQL: the database is there but not migrated.
        print(
            f"error: the database ({settings.database_url.split('@')[-1]}) is not migrated: "
            f"{str(exc.orig).splitlines()[0]}"
            " (run `python -m app.cli migrate`)",
            file=sys.stderr,
        )
        return 2
    except ServiceError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
