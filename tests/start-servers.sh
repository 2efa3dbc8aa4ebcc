#!/bin/sh
# Start the local PostgreSQL and MariaDB when they are installed but not running.
# (When they are not installed at all, the tests start private ones or say what to install.)
# Start Oracle MySQL (tests/oracle-mysql.sh: Debian sid's mysql-server in a cached chroot, built on
# first use) on 127.0.0.1:3307, unless TEST_ORACLE_MYSQL_HOST names another server.
set -u
if command -v pg_lsclusters >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    for dir in /etc/postgresql/*/; do
        version=$(basename "$dir")
        if ! pg_lsclusters "$version" main 2>/dev/null | grep -q online; then
            echo "starting PostgreSQL $version"
            pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
        fi
    done
fi
if [ -x /usr/sbin/mariadbd ] && ! mariadb-admin -uroot ping >/dev/null 2>&1; then
    echo "starting MariaDB"
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
    for _ in $(seq 1 50); do mariadb-admin -uroot ping >/dev/null 2>&1 && break; sleep 0.2; done
fi
if [ "${TEST_ORACLE_MYSQL_HOST:-127.0.0.1}" = 127.0.0.1 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "Oracle MySQL: not started (tests/oracle-mysql.sh start needs root)"
    else
        bash "$(dirname "$0")/oracle-mysql.sh" start ||
            echo "Oracle MySQL: not started (see above); the [mysql] tests will fail"
    fi
fi
exit 0
