"""Start-up refusals: a bad setting or an unmigrated database is named in one line, with a non-zero
exit and no traceback (the CLI is run as a user runs it)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from app.config import PROJECT_ROOT
from tests.conftest import PG_HOST, create_pg_database, drop_pg_database


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "named", "expected"),
    [
        ({"REQUIRE_API_KEYS": "maybe"}, "REQUIRE_API_KEYS", "valid boolean"),
        ({"MAX_BODY_BYTES": "abc"}, "MAX_BODY_BYTES", "valid integer"),
        ({"PORT": "99999"}, "PORT", "less than or equal to 65535"),
        ({"DATABASE_URL": "mysql://root@127.0.0.1/x"}, "DATABASE_URL", "sqlite:/// or postgresql+psycopg://"),
        ({"CORS_ORIGINS": "https://portal.example"}, "cors_origins", "written as JSON"),
    ],
)
def test_a_bad_setting_is_named_in_one_line_and_nothing_starts(tmp_path, env, named, expected):
    result = run_cli("serve", env={"DATABASE_URL": f"sqlite:///{tmp_path}/x.db", **env})
    assert result.returncode == 2
    assert result.stderr.startswith("error: invalid setting: ")
    assert named in result.stderr and expected in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
    assert result.stdout == ""  # "serving on ..." is never printed
    assert not (tmp_path / "x.db").exists()


def test_a_port_argument_out_of_range_is_refused(tmp_path):
    result = run_cli("serve", "--port", "0", env={"DATABASE_URL": f"sqlite:///{tmp_path}/x.db"})
    assert result.returncode == 2
    assert "expected a port number from 1 to 65535, got '0'" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unmigrated_sqlite_database_says_to_migrate(tmp_path):
    result = run_cli("keys", "list", env={"DATABASE_URL": f"sqlite:///{tmp_path}/new.db"})
    assert result.returncode == 2
    assert "no such table" in result.stderr and "run `python -m app.cli migrate`" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unmigrated_postgresql_database_says_to_migrate():
    name, url = create_pg_database()
    try:
        result = run_cli("keys", "list", env={"DATABASE_URL": url})
    finally:
        drop_pg_database(name)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: the database ({PG_HOST}:5432/{name}) is not migrated: ")
    assert "run `python -m app.cli migrate`" in result.stderr and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
