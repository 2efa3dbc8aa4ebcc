"""Configuration: every problem at once, exit 2, secrets from files and .env, never printed."""

from __future__ import annotations

import re
import uuid

from datasync.config import REQUIRED, VARIABLES, Secret, load_mysql_sync
from tests.conftest import ROOT, base_env, run_service

NASTY = "p a$s \"q' #h %x @d \\b"


def test_all_problems_reported_at_once_exit_2():
    env = base_env(MYSQL_PORT="abc", POSTGRES_SSLMODE="maybe", MYSQL_SYNC_MODES="orders=sometimes",
                   MYSQL_PASSWORD="shown-nowhere", LOG_JSON="perhaps")
    result = run_service("mysql_sync_service.py", env)
    assert result.code == 2
    for problem in ("MYSQL_HOST is required", "MYSQL_DB is required", "POSTGRES_HOST is required",
                    "MYSQL_PORT must be a whole number, got 'abc'", "POSTGRES_SSLMODE must be one of",
                    "MYSQL_SYNC_MODES item 'orders=sometimes'", "LOG_JSON must be true or false"):
        assert result.lines(f"configuration: {problem}"), problem
    assert "shown-nowhere" not in result.out


def test_usage_error_exit_2():
    assert run_service("mysql_sync_service.py", base_env(), "--bogus").code == 2
    help_text = run_service("mysql_sync_service.py", base_env(), "--help")
    assert help_text.code == 0 and "--full-refresh" in help_text.out and "3    a server could not" in help_text.out


def test_secret_file_and_both_set(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text(NASTY + "\n")
    env = dict(MYSQL_HOST="h", MYSQL_DB="d", MYSQL_USER="u", POSTGRES_HOST="h", POSTGRES_DB="d", POSTGRES_USER="u",
               MYSQL_PASSWORD_FILE=str(secret), DATASYNC_ENV_FILE="/nonexistent")
    settings = load_mysql_sync(env)
    assert settings.mysql.password.value == NASTY
    assert NASTY not in repr(settings)
    both = run_service("mysql_sync_service.py", base_env(**env, MYSQL_PASSWORD="x"))
    assert both.code == 2 and both.lines("MYSQL_PASSWORD set either MYSQL_PASSWORD or MYSQL_PASSWORD_FILE, not both")
    missing = run_service("mysql_sync_service.py", base_env(**{**env, "MYSQL_PASSWORD_FILE": "/no/such"}))
    assert missing.code == 2 and missing.lines("MYSQL_PASSWORD_FILE cannot read /no/such")


def test_nasty_password_reaches_mysql_from_file_and_dotenv(sync_env, mysql_db, pg_db, tmp_path):
    user = "ds_" + uuid.uuid4().hex[:8]
    mysql_db.run(f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s", args=(NASTY,))
    mysql_db.run(f"CREATE USER '{user}'@'localhost' IDENTIFIED BY %s", args=(NASTY,))
    try:
        mysql_db.run(f"GRANT SELECT ON `{mysql_db.name}`.* TO '{user}'@'%'",
                     f"GRANT SELECT ON `{mysql_db.name}`.* TO '{user}'@'localhost'",
                     "CREATE TABLE t (id INT PRIMARY KEY)", "INSERT INTO t VALUES (1)")
        secret = tmp_path / "pw"
        secret.write_text(NASTY)
        # MYSQL_PASSWORD_FILE replaces MYSQL_PASSWORD (both set is a configuration error)
        from_file = {k: v for k, v in sync_env.items() if k != "MYSQL_PASSWORD"}
        result = run_service("mysql_sync_service.py", {**from_file, "MYSQL_USER": user,
                                                       "MYSQL_PASSWORD_FILE": str(secret)})
        assert result.code == 0, result.out
        dotenv = tmp_path / ".env"
        dotenv.write_text(f"MYSQL_USER={user}\nMYSQL_PASSWORD='{NASTY}'\n".replace("'q'", "q"))
        env = {k: v for k, v in sync_env.items() if k not in ("MYSQL_USER", "MYSQL_PASSWORD")}
        env["DATASYNC_ENV_FILE"] = str(dotenv)
        wrong = run_service("mysql_sync_service.py", env)
        # single quotes cannot hold a single quote in .env syntax; the file above has it removed,
        # so MySQL must refuse the login and the password must not be shown
        assert wrong.code == 2 and "a$s" not in wrong.out and wrong.lines("refused the connection")
        assert pg_db.value("SELECT count(*) FROM src.t") == 1
    finally:
        mysql_db.run(f"DROP USER '{user}'@'%'", f"DROP USER '{user}'@'localhost'")


def test_default_target_schema_is_the_database_named_in_mysql_db_file(tmp_path):
    name = tmp_path / "db"
    name.write_text("Shop_DB\n")
    env = dict(MYSQL_HOST="h", MYSQL_USER="u", POSTGRES_HOST="h", POSTGRES_DB="d", POSTGRES_USER="u",
               MYSQL_DB_FILE=str(name), DATASYNC_ENV_FILE="/nonexistent")
    settings = load_mysql_sync(env)
    assert (settings.mysql.db, settings.target_schema) == ("Shop_DB", "shop_db")  # MYSQL_DB itself is not set


def test_secret_repr():
    assert repr(Secret("x")) == "Secret('***')" and str(Secret("")) == "Secret('')"


def test_readme_configuration_table_matches_settings():
    readme = (ROOT / "README.md").read_text()
    table = {m.group(1): (m.group(2).strip(), m.group(3).strip())
             for m in re.finditer(r"^\| `([A-Z0-9_]+)` \| ([^|]*) \| ([^|]*) \|", readme, re.M)}
    documented = {name for name in table if name in VARIABLES or not name.startswith(("TEST_",))}
    assert set(VARIABLES) <= documented, f"missing from README: {sorted(set(VARIABLES) - documented)}"
    for name, var in VARIABLES.items():
        default = "required" if var.default is REQUIRED else (f"`{var.default}`" if var.default else "")
        assert table[name][0] == default, f"{name}: README default {table[name][0]!r}, settings {default!r}"


def test_ftp_port_from_file_and_default_by_protocol(tmp_path):
    from datasync.config import load_ftp_log

    port = tmp_path / "port"
    port.write_text("2121\n")
    env = dict(FTP_HOST="h", FTP_USER="u", POSTGRES_HOST="h", POSTGRES_DB="d", POSTGRES_USER="u",
               DATASYNC_ENV_FILE="/nonexistent")
    assert load_ftp_log({**env, "FTP_PORT_FILE": str(port)}).ftp.port == 2121
    assert load_ftp_log({**env, "FTP_PROTOCOL": "sftp"}).ftp.port == 22
