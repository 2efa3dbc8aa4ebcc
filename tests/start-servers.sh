#!/bin/sh
# Start the local PostgreSQL and MariaDB when they are installed but not running.
# (When they are not installed at all, the tests start private ones or say what to install.)
set -u
if command -v pg_lsclusters >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    for version in $(ls /etc/postgresql); do
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
exit 0
