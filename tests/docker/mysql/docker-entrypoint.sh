#!/bin/sh
# Test fixture: the part of the official mysql image's entrypoint the demo stack uses.
# MYSQL_ROOT_PASSWORD, MYSQL_ALLOW_EMPTY_PASSWORD or MYSQL_RANDOM_ROOT_PASSWORD (one is required),
# MYSQL_DATABASE, MYSQL_USER and MYSQL_PASSWORD (all privileges on MYSQL_DATABASE), and
# /docker-entrypoint-initdb.d/*.sql on the first start. The temporary server of the initialisation
# listens on no TCP port, so a TCP health check passes only once the real server runs.
set -eu

if [ "${1:-}" = mysqld ] && [ "$(id -u)" = 0 ]; then
    mkdir -p /var/lib/mysql /var/run/mysqld
    chown mysql:mysql /var/lib/mysql /var/run/mysqld
    exec setpriv --reuid mysql --regid mysql --init-groups "$0" "$@"
fi

literal() {  # a SQL string literal, as the real image escapes it
    printf "'%s'" "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e "s/'/\\\\'/g")"
}

if [ "${1:-}" = mysqld ] && [ ! -d /var/lib/mysql/mysql ]; then
    if [ -z "${MYSQL_ROOT_PASSWORD:-}" ] && [ -z "${MYSQL_ALLOW_EMPTY_PASSWORD:-}" ] &&
        [ -z "${MYSQL_RANDOM_ROOT_PASSWORD:-}" ]; then
        echo "error: database is uninitialized and password option is not specified" >&2
        echo "  You need to specify one of MYSQL_ROOT_PASSWORD, MYSQL_ALLOW_EMPTY_PASSWORD and MYSQL_RANDOM_ROOT_PASSWORD" >&2
        exit 1
    fi
    root_password=${MYSQL_ROOT_PASSWORD:-}
    if [ -n "${MYSQL_RANDOM_ROOT_PASSWORD:-}" ]; then
        root_password=$(tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32)
        echo "GENERATED ROOT PASSWORD: $root_password"
    fi
    mysqld --initialize-insecure --datadir=/var/lib/mysql
    mysqld --skip-networking --datadir=/var/lib/mysql --socket=/var/run/mysqld/mysqld.sock &
    pid=$!
    i=0
    until mysqladmin --socket=/var/run/mysqld/mysqld.sock -uroot ping --silent >/dev/null 2>&1; do
        i=$((i + 1))
        [ "$i" -lt 120 ] || { echo "error: the temporary server did not start" >&2; exit 1; }
        sleep 0.5
    done
    {
        echo "SET @@SESSION.SQL_LOG_BIN=0;"
        echo "ALTER USER 'root'@'localhost' IDENTIFIED BY $(literal "$root_password");"
        echo "CREATE USER 'root'@'%' IDENTIFIED BY $(literal "$root_password");"
        echo "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"
        if [ -n "${MYSQL_DATABASE:-}" ]; then
            echo "CREATE DATABASE IF NOT EXISTS \`$MYSQL_DATABASE\`;"
        fi
        if [ -n "${MYSQL_USER:-}" ] && [ -n "${MYSQL_PASSWORD:-}" ]; then
            echo "CREATE USER $(literal "$MYSQL_USER")@'%' IDENTIFIED BY $(literal "$MYSQL_PASSWORD");"
            if [ -n "${MYSQL_DATABASE:-}" ]; then
                echo "GRANT ALL ON \`$MYSQL_DATABASE\`.* TO $(literal "$MYSQL_USER")@'%';"
            fi
        fi
    } | mysql --socket=/var/run/mysqld/mysqld.sock -uroot
    for f in /docker-entrypoint-initdb.d/*; do
        case $f in
            *.sql)
                echo "running $f"
                MYSQL_PWD=$root_password mysql --socket=/var/run/mysqld/mysqld.sock -uroot \
                    ${MYSQL_DATABASE:+--database="$MYSQL_DATABASE"} <"$f" ;;
        esac
    done
    MYSQL_PWD=$root_password mysqladmin --socket=/var/run/mysqld/mysqld.sock -uroot shutdown
    wait "$pid" || true
    echo "MySQL init process done. Ready for start up."
fi

exec "$@"
