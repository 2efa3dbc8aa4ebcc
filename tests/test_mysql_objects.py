"""What users build on the copies stays; tables the service did not create are left alone; gone tables;
least privilege; data and state commit together."""

from __future__ import annotations

import hashlib
import uuid

import psycopg2
import pytest

from tests.helpers import pg_rows, table_state

OBJECTS = """
CREATE ROLE {reader};
GRANT USAGE ON SCHEMA src TO {reader};
GRANT SELECT ON src.{t} TO {reader};
ALTER TABLE src.{t} ENABLE ROW LEVEL SECURITY;
CREATE POLICY only_a1 ON src.{t} FOR SELECT TO {reader} USING (a = 1);
CREATE TABLE src.audit (n integer);
CREATE FUNCTION src.audit() RETURNS trigger LANGUAGE plpgsql
    AS $$BEGIN INSERT INTO src.audit VALUES (1); RETURN NEW; END$$;
CREATE TRIGGER audit AFTER INSERT ON src.{t} FOR EACH ROW EXECUTE FUNCTION src.audit();
CREATE INDEX users_index ON src.{t} (b);
COMMENT ON TABLE src.{t} IS 'a copy, with notes';
COMMENT ON COLUMN src.{t}.b IS 'the b column';
ALTER TABLE src.{t} ADD CONSTRAINT a_positive CHECK (a > 0);
CREATE VIEW src.{t}_view AS SELECT a, b FROM src.{t};
ALTER TABLE src.{t} OWNER TO {owner};
"""


@pytest.fixture
def roles(pg_db):
    names = {"reader": f"reader_{uuid.uuid4().hex[:8]}", "owner": f"owner_{uuid.uuid4().hex[:8]}"}
    pg_db.query(f"CREATE ROLE {names['owner']}")
    yield names
    for role in names.values():
        pg_db.query(f"DROP OWNED BY {role} CASCADE; DROP ROLE IF EXISTS {role}")


def users_objects(pg_db, table):
    """Everything OBJECTS built, as seen now."""
    return {
        "oid": pg_db.value(f"SELECT 'src.{table}'::regclass::oid"),
        "policies": pg_db.value("SELECT count(*) FROM pg_policies WHERE tablename = %s", (table,)),
        "rls": pg_db.value(f"SELECT relrowsecurity FROM pg_class WHERE oid = 'src.{table}'::regclass"),
        "trigger": pg_db.value("SELECT count(*) FROM pg_trigger WHERE tgname = 'audit' AND NOT tgisinternal"),
        "index": pg_db.value("SELECT to_regclass('src.users_index') IS NOT NULL"),
        "comments": (pg_db.value(f"SELECT obj_description('src.{table}'::regclass)"),
                     pg_db.value(f"SELECT col_description('src.{table}'::regclass, 2)")),
        "check": pg_db.value("SELECT count(*) FROM pg_constraint WHERE conname = 'a_positive'"),
        "view": pg_db.value(f"SELECT count(*) FROM src.{table}_view"),
        "owner": pg_db.value(f"SELECT relowner::regrole::text FROM pg_class WHERE oid = 'src.{table}'::regclass"),
    }


def visible_to(pg_db, role, table):
    with pg_db.connect() as conn, conn.cursor() as cur:
        cur.execute(f"SET ROLE {role}")
        cur.execute(f"SELECT a FROM src.{table} ORDER BY a")
        rows = [r[0] for r in cur.fetchall()]
    conn.close()
    return rows


@pytest.mark.parametrize("kind", ["full", "incremental --full-refresh", "incremental, retyped column"])
def test_reloads_keep_everything_users_built(sync, mysql_db, pg_db, roles, kind):
    if kind == "full":
        mysql_db.run("CREATE TABLE t (a INT, b VARCHAR(10))", "INSERT INTO t VALUES (1, 'x'), (2, 'y')")
    else:
        mysql_db.run("CREATE TABLE t (id INT PRIMARY KEY, a INT, b VARCHAR(10), c VARCHAR(10), updated_at TIMESTAMP(6) "
                     "NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))",
                     "INSERT INTO t (id, a, b) VALUES (1, 1, 'x'), (2, 2, 'y')")
    assert sync().code == 0
    pg_db.query(OBJECTS.format(t="t", **roles))
    before = users_objects(pg_db, "t")
    mysql_db.run("INSERT INTO t (a, b) VALUES (1, 'z')" if kind == "full" else
                 "INSERT INTO t (id, a, b) VALUES (3, 1, 'z')")
    args = ["--full-refresh"] if "refresh" in kind else []
    if "retyped" in kind:
        mysql_db.run("ALTER TABLE t MODIFY c VARCHAR(40)")
    result = sync(*args)
    assert result.code == 0, result.out
    assert result.lines("t: full ok: 3 inserted, 0 updated, 2 deleted")
    after = users_objects(pg_db, "t")
    assert after == {**before, "view": 3}
    assert visible_to(pg_db, roles["reader"], "t") == [1, 1]  # row-level security still applies
    assert pg_db.value("SELECT count(*) FROM src.audit") == 3  # the trigger saw the rows arrive
    assert pg_db.value("SELECT has_table_privilege(%s, 'src.t', 'SELECT')", (roles["reader"],))


def test_a_view_on_a_column_whose_type_changes_is_named(sync, mysql_db, pg_db):
    mysql_db.run("CREATE TABLE t (id INT PRIMARY KEY, c VARCHAR(10), updated_at TIMESTAMP(6) NOT NULL "
                 "DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))",
                 "INSERT INTO t (id, c) VALUES (1, 'x')")
    assert sync().code == 0
    pg_db.query("CREATE VIEW src.uses_c AS SELECT c FROM src.t")
    mysql_db.run("ALTER TABLE t MODIFY c VARCHAR(40)")
    result = sync()
    assert result.code == 1
    assert result.lines("t: failed: table 't': cannot alter type of a column used by a view or rule")
    assert result.lines("uses_c")
    assert pg_db.query("SELECT id, c FROM src.t") == [(1, "x")]  # rolled back: nothing deleted


def test_a_table_the_service_did_not_create_is_left_alone(sync, mysql_db, pg_db):
    mysql_db.run("CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(20))",
                 "INSERT INTO customers VALUES (1, 'from mysql')", "CREATE TABLE other (id INT PRIMARY KEY)")
    pg_db.query("CREATE SCHEMA src; CREATE TABLE src.customers (id int PRIMARY KEY, name varchar(20)); "
                "INSERT INTO src.customers VALUES (7, 'a user''s row')")
    refused = sync()
    assert refused.code == 1
    assert refused.lines("customers: failed: table 'customers': src.customers exists in PostgreSQL but was not "
                         "created by this service; it is left alone (set MYSQL_ADOPT_TABLES=customers")
    assert pg_db.query("SELECT id, name FROM src.customers") == [(7, "a user's row")]
    assert pg_db.value("SELECT to_regclass('src.other') IS NOT NULL")
    dry = sync("--dry-run")
    assert "src.customers exists but was not created by this service: left alone" in dry.out
    adopted = sync(MYSQL_ADOPT_TABLES="cust*")
    assert adopted.code == 0 and adopted.lines("customers: taking over the existing src.customers")
    assert pg_db.query("SELECT id, name FROM src.customers") == [(1, "from mysql")]
    assert sync().code == 0  # now it is the service's: no opt-in needed any more


@pytest.mark.parametrize("schema, variable", [("datasync", "DATASYNC_STATE_SCHEMA"), ("public", "FTP_TARGET_SCHEMA")])
def test_the_copies_may_not_share_the_state_or_log_schema(sync, mysql_db, pg_db, schema, variable):
    result = sync(MYSQL_TARGET_SCHEMA=schema)
    assert result.code == 2 and result.lines(f"configuration: MYSQL_TARGET_SCHEMA must differ from {variable}")
    assert pg_db.value("SELECT count(*) FROM pg_namespace WHERE nspname = 'datasync'") == 0


def test_tables_gone_from_mysql_are_reported_then_dropped_on_request(sync, mysql_db, pg_db):
    mysql_db.run("CREATE TABLE stays (id INT PRIMARY KEY)", "CREATE TABLE old_name (id INT PRIMARY KEY)",
                 "INSERT INTO old_name VALUES (1)")
    assert sync().code == 0
    mysql_db.run("RENAME TABLE old_name TO new_name")
    result = sync()
    assert result.code == 0
    assert result.lines("old_name: gone from MySQL (dropped or renamed); its copy src.old_name is kept")
    assert table_state(pg_db, "old_name")["last_status"] == "gone"
    status = sync("--status")
    assert [line for line in status.out.splitlines() if line.startswith("old_name ") and " gone " in line]
    verify = sync("--verify")
    assert verify.code == 1 and verify.lines("old_name: gone from MySQL; its copy src.old_name is still there")
    dropped = sync(MYSQL_DROP_GONE_TABLES="true")
    assert dropped.lines("old_name: gone from MySQL: its copy src.old_name was dropped")
    assert pg_db.value("SELECT to_regclass('src.old_name')") is None and table_state(pg_db, "old_name") is None
    assert pg_db.value("SELECT count(*) FROM src.new_name") == 1
    assert sync("--verify").code == 0


def test_leftover_tables_of_an_interrupted_swap_are_dropped(sync, mysql_db, pg_db):
    mysql_db.run("CREATE TABLE t (a INT)")
    pg_db.query("CREATE SCHEMA src; CREATE TABLE src._datasync_new_0123456789abcdef (a int)")
    result = sync()
    assert result.code == 0 and result.lines("dropped src._datasync_new_0123456789abcdef, left behind")
    assert pg_db.value("SELECT to_regclass('src._datasync_new_0123456789abcdef')") is None


def test_users_tables_that_only_resemble_a_leftover_are_kept(sync, mysql_db, pg_db):
    """Only names of the earlier version's exact form are leftovers ("_" is no wildcard), and never a copy."""
    mysql_db.run("CREATE TABLE `_datasync_new_00112233445566ff` (a INT)",
                 "INSERT INTO `_datasync_new_00112233445566ff` VALUES (1)")
    users = ["xdatasyncynew_z", "_datasync_new_notes"]  # LIKE '_datasync_new_%' matches both
    pg_db.query("CREATE SCHEMA src; " + "".join(f"CREATE TABLE src.{t} (a int); INSERT INTO src.{t} VALUES (7); "
                                                for t in users))
    first = sync()
    assert first.code == 0, first.out
    copy = pg_db.value("SELECT 'src._datasync_new_00112233445566ff'::regclass::oid")
    second = sync()  # now the copy of a MySQL table named like a leftover is in the state
    assert second.code == 0, second.out
    assert not first.lines("left behind") and not second.lines("left behind")
    assert [pg_db.value(f"SELECT count(*) FROM src.{t} WHERE a = 7") for t in users] == [1, 1]
    assert pg_db.value("SELECT 'src._datasync_new_00112233445566ff'::regclass::oid") == copy
    assert pg_db.value("SELECT a FROM src._datasync_new_00112233445566ff") == 1


def test_data_and_state_commit_together(sync, mysql_db, pg_db):
    """When the state cannot be written, the table's data is not committed either."""
    mysql_db.run("CREATE TABLE t (id INT PRIMARY KEY, v INT)", "INSERT INTO t VALUES (1, 1)")
    assert sync().code == 0
    pg_db.query("CREATE FUNCTION datasync.refuse() RETURNS trigger LANGUAGE plpgsql AS "
                "$$BEGIN RAISE EXCEPTION 'state write refused'; END$$; "
                "CREATE TRIGGER refuse BEFORE UPDATE ON datasync.mysql_tables FOR EACH ROW "
                "EXECUTE FUNCTION datasync.refuse()")
    mysql_db.run("UPDATE t SET v = 2", "INSERT INTO t VALUES (2, 2)")
    failed = sync()
    assert failed.code == 1 and failed.lines("t: failed: PostgreSQL: state write refused")
    assert pg_db.query("SELECT id, v FROM src.t ORDER BY id") == [(1, 1)]  # the merge was rolled back with it
    pg_db.query("DROP TRIGGER refuse ON datasync.mysql_tables")
    assert sync().code == 0
    assert pg_db.query("SELECT id, v FROM src.t ORDER BY id") == [(1, 2), (2, 2)]


@pytest.fixture
def least_privileged(pg_db, mysql_db):
    """Exactly the grants README.md's "Least privilege" lists, on both sides, and nothing more: PUBLIC's
    default CONNECT and TEMPORARY on the database are revoked first, so only the README's GRANT gives them."""
    role = f"ds_{uuid.uuid4().hex[:8]}"
    user = f"ds_{uuid.uuid4().hex[:8]}"
    pg_db.query(f"REVOKE ALL ON DATABASE \"{pg_db.name}\" FROM PUBLIC; "
                f"CREATE ROLE {role} LOGIN PASSWORD 'Pw-{role}'; "
                f"CREATE SCHEMA src AUTHORIZATION {role}; "        # MYSQL_TARGET_SCHEMA
                f"CREATE SCHEMA datasync AUTHORIZATION {role}; "   # DATASYNC_STATE_SCHEMA
                f"CREATE SCHEMA logs AUTHORIZATION {role}; "       # FTP_TARGET_SCHEMA
                f"GRANT CONNECT, TEMPORARY ON DATABASE \"{pg_db.name}\" TO {role}")
    # one account per host pattern a loopback login may match (MariaDB prefers 'localhost' to '%')
    for host in ("%", "localhost"):
        mysql_db.run(f"CREATE USER '{user}'@'{host.replace('%', '%%')}' IDENTIFIED BY 'Pw-{user}'")
        mysql_db.run(f"GRANT SELECT ON `{mysql_db.name}`.* TO '{user}'@'{host.replace('%', '%%')}'")
    yield {"POSTGRES_USER": role, "POSTGRES_PASSWORD": f"Pw-{role}", "MYSQL_USER": user,
           "MYSQL_PASSWORD": f"Pw-{user}"}
    for host in ("%", "localhost"):
        mysql_db.run(f"DROP USER '{user}'@'{host.replace('%', '%%')}'")
    pg_db.query(f"DROP OWNED BY {role} CASCADE; DROP ROLE {role}")


def test_least_privilege_is_enough(sync, mysql_db, pg_db, least_privileged):
    role = least_privileged["POSTGRES_USER"]
    # a full-mode table (it has a key) whose value is too large for one packet: read in pieces through a
    # temporary table; a diff-mode table (its merge stages rows in a temporary table); incremental; keyless
    p = mysql_db.value("SELECT @@max_allowed_packet")
    mysql_db.run("CREATE TABLE blobs (id INT PRIMARY KEY, b LONGBLOB)",
                 "CREATE TABLE keyed (id INT PRIMARY KEY, v TEXT)", "INSERT INTO keyed VALUES (1, 'a'), (2, 'b')",
                 "CREATE TABLE heap (v TEXT)", "INSERT INTO heap VALUES ('x')",
                 "CREATE TABLE orders (id INT PRIMARY KEY, v INT, updated_at TIMESTAMP(6) NOT NULL "
                 "DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))",
                 "INSERT INTO orders (id, v) VALUES (1, 1)")
    mysql_db.run("INSERT INTO blobs VALUES (1, REPEAT(x'00ff', %s))", args=(p // 8 + 100,))  # its hex > p / 2
    acl = pg_db.value("SELECT datacl::text[] FROM pg_database WHERE datname = current_database()")
    assert not [entry for entry in acl if entry.startswith("=")]  # PUBLIC holds nothing on the database
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        pg_db.query(f"SET ROLE {role}; CREATE SCHEMA nope")
    env = {**least_privileged, "MYSQL_SYNC_MODES": "blobs=full"}
    for _ in range(2):
        result = sync(**env)
        assert result.code == 0, result.out
        assert result.lines("blobs: b: a value too large for one MySQL packet was read in pieces")
    mysql_db.run("DELETE FROM keyed WHERE id = 1", "UPDATE orders SET v = 2", "INSERT INTO heap VALUES ('y')",
                 "UPDATE keyed SET v = 'c' WHERE id = 2")
    result = sync(**env)
    assert result.code == 0, result.out
    assert result.lines("keyed: diff ok: 0 inserted, 1 updated, 1 deleted")
    assert pg_db.query("SELECT id, v FROM src.keyed") == [(2, "c")]
    assert pg_db.value("SELECT count(*) FROM src.heap") == 2 and pg_db.value("SELECT v FROM src.orders") == 2
    blob = b"\x00\xff" * (p // 8 + 100)
    assert pg_db.query("SELECT id, md5(b) FROM src.blobs") == [(1, hashlib.md5(blob).hexdigest())]
    assert sync("--verify", **env).code == 0
    assert sync("--status", **env).code == 0
    assert [r["status"] for r in pg_rows(pg_db, "SELECT status FROM datasync.runs")] == ["ok"] * 3
