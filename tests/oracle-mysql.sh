#!/usr/bin/env bash
# Oracle MySQL for the tests: Debian sid's mysql-server in a cached chroot, serving 127.0.0.1:3307.
#
#   tests/oracle-mysql.sh ensure   build the chroot if it is missing (root, Debian's debootstrap)
#   tests/oracle-mysql.sh start    ensure, then start mysqld on a fresh data directory and wait for it
#   tests/oracle-mysql.sh stop     stop the mysqld that start started (by its PID)
#   tests/oracle-mysql.sh status   exit 0 and say so when it runs
#
# The chroot is built once into a temporary directory beside DATASYNC_MYSQL_CHROOT and renamed when
# complete, so a half-built one is never used (and is removed by the next ensure). Nothing is written into
# it after that: data directory, socket, pid file and log live in DATASYNC_MYSQL_RUN, which mysqld sees
# as its /run through a bind mount in a private mount namespace (with its own /proc). Those mounts exist
# only for mysqld and vanish with it: there is nothing to unmount on the host.
#
# Environment: DATASYNC_MYSQL_CHROOT (default /var/cache/datasync-test/mysql-sid), DATASYNC_MYSQL_RUN
# (default /var/cache/datasync-test/mysql-run), DATASYNC_MYSQL_MIRROR (default: the host's Debian mirror
# from its apt sources), TEST_ORACLE_MYSQL_PORT (3307), TEST_ORACLE_MYSQL_USER (root) and
# TEST_ORACLE_MYSQL_PASSWORD (datasync-test): the account the tests log in with over TCP.
set -euo pipefail

ROOT=${DATASYNC_MYSQL_CHROOT:-/var/cache/datasync-test/mysql-sid}
RUN=${DATASYNC_MYSQL_RUN:-/var/cache/datasync-test/mysql-run}
PORT=${TEST_ORACLE_MYSQL_PORT:-3307}
ACCOUNT=${TEST_ORACLE_MYSQL_USER:-root}
PASSWORD=${TEST_ORACLE_MYSQL_PASSWORD-datasync-test}
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

say() { echo "oracle-mysql: $*" >&2; }
die() { say "$*"; exit 1; }

# canonical paths: the running mysqld is recognised by /proc/PID/exe, which has symbolic links resolved
ROOT=$(realpath -m "$ROOT")
RUN=$(realpath -m "$RUN")
PARENT=$(dirname "$ROOT")
NAME=$(basename "$ROOT")
case $ROOT in /?*/?*) ;; *) die "DATASYNC_MYSQL_CHROOT must be an absolute path below a folder, got $ROOT" ;; esac
case $RUN in /?*/?*) ;; *) die "DATASYNC_MYSQL_RUN must be an absolute path below a folder, got $RUN" ;; esac
case $RUN/ in "$ROOT"/*) die "DATASYNC_MYSQL_RUN ($RUN) must be outside the chroot ($ROOT)" ;; esac
case $ROOT/ in "$RUN"/*) die "DATASYNC_MYSQL_CHROOT ($ROOT) must be outside DATASYNC_MYSQL_RUN ($RUN)" ;; esac

need_root() {
    [ "$(id -u)" = 0 ] || die "needs root (chroot, mount namespaces); run it as root: sudo $0 $1"
}

# A command inside a chroot with a clean environment (the mysql client would read MYSQL_HOST, ...).
in_chroot() {
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive chroot "$@"
}
in_root() { in_chroot "$ROOT" "$@"; }

mirror() {
    if [ -n "${DATASYNC_MYSQL_MIRROR:-}" ]; then echo "$DATASYNC_MYSQL_MIRROR"; return; fi
    # the host's own Debian mirror (deb822 .sources or one-line sources.list)
    local found
    found=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
            awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) { print $i; exit } }')
    [ -n "$found" ] || found=$(cat /etc/apt/sources.list 2>/dev/null |
            awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\/.*\/debian\/?$/) { print $i; exit } }')
    [ -n "$found" ] || die "no Debian mirror found in /etc/apt/sources*: set DATASYNC_MYSQL_MIRROR"
    echo "$found"
}

ensure() {
    need_root ensure
    [ -x "$ROOT/usr/sbin/mysqld" ] && return 0
    [ -e "$ROOT" ] && die "$ROOT exists but has no usr/sbin/mysqld: remove it, then run $0 ensure"
    command -v debootstrap >/dev/null || die "Debian's debootstrap is needed to build $ROOT: apt-get install debootstrap"
    mkdir -p "$PARENT"
    # one build at a time; a build that was interrupted left only a .build directory, removed here
    exec 9>"$PARENT/.$NAME.lock"
    flock 9
    if [ -x "$ROOT/usr/sbin/mysqld" ]; then exec 9>&-; return 0; fi
    local stale
    for stale in "$PARENT/.$NAME.build."*; do
        [ -d "$stale" ] || { rm -f "$stale"; continue; }
        if findmnt -rn -o TARGET | grep -qF "$stale/"; then die "$stale has mounts; unmount them and remove it"; fi
        say "removing the half-built $stale"
        rm -rf --one-file-system "$stale"
    done
    local tmp started=$SECONDS url
    tmp=$(mktemp -d "$PARENT/.$NAME.build.XXXXXX")
    chmod 755 "$tmp"  # it becomes the chroot's / (mktemp made it 0700)
    url=$(mirror)
    say "building $ROOT (debootstrap sid, then mysql-server; once, a few minutes)"
    # in a private mount namespace: debootstrap's /proc and /sys mounts cannot outlive it
    unshare --mount --propagation private debootstrap --variant=minbase sid "$tmp" "$url" >"$tmp.log" 2>&1 ||
        { tail -n 20 "$tmp.log" >&2; die "debootstrap failed (log: $tmp.log)"; }
    printf '#!/bin/sh\n# no service starts inside this chroot\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"
    chmod 755 "$tmp/usr/sbin/policy-rc.d"
    # (a mirror that serves a dated snapshot has an expired Release file: accept it)
    { in_chroot "$tmp" apt-get -o Acquire::Check-Valid-Until=false update &&
      in_chroot "$tmp" apt-get install -y --no-install-recommends mysql-server &&
      in_chroot "$tmp" apt-get clean; } >>"$tmp.log" 2>&1 ||
        { tail -n 20 "$tmp.log" >&2; die "installing mysql-server in the chroot failed (log: $tmp.log)"; }
    # nothing of this host stays in the image: the package's postinst moves the default port to 3307 when it
    # sees 3306 taken (the chroot shares the host's network), and it may initialise a data directory
    rm -f "$tmp/etc/mysql/mysql.conf.d/99-port-backoff.cnf"
    find "$tmp/var/lib/mysql" -mindepth 1 -delete 2>/dev/null || true
    [ -x "$tmp/usr/sbin/mysqld" ] || die "mysql-server installed no usr/sbin/mysqld (log: $tmp.log)"
    mv -T "$tmp" "$ROOT"
    mv "$tmp.log" "$PARENT/$NAME.build.log"
    say "built $ROOT in $((SECONDS - started)) s: $(in_root mysqld --version)"
    exec 9>&-
}

# The PID of our running mysqld, or nothing.
running_pid() {
    local pid
    pid=$(cat "$RUN/mysqld.pid" 2>/dev/null) || return 0
    case $pid in ''|*[!0-9]*) return 0 ;; esac
    [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$ROOT/usr/sbin/mysqld" ] && echo "$pid"
    return 0
}

# Answers over TCP (mysqladmin ping succeeds even for a refused login: it only asks whether the server is up).
answers() {
    in_root mysqladmin --no-defaults --protocol=TCP -h127.0.0.1 -P"$PORT" -uping --connect-timeout=2 ping \
        >/dev/null 2>&1
}

close_fds() {
    local fd
    for fd in /proc/"$BASHPID"/fd/*; do
        fd=${fd##*/}
        if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi
    done
}

elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

sql_quote() { printf "'%s'" "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e "s/'/''/g")"; }

# start and stop one at a time
lock_run() {
    mkdir -p "$(dirname "$RUN")"
    exec 8>"$RUN.lock"
    flock -w 120 8 || die "another start or stop has held $RUN.lock for 2 minutes"
}

start() {
    need_root start
    ensure
    lock_run
    local pid
    pid=$(running_pid)
    if [ -n "$pid" ]; then
        answers && { say "already running (pid $pid) on 127.0.0.1:$PORT"; return 0; }
        die "mysqld (pid $pid) runs but does not answer on 127.0.0.1:$PORT; see $RUN/error.log, or $0 stop"
    fi
    if answers; then die "something else answers on 127.0.0.1:$PORT: stop it or set TEST_ORACLE_MYSQL_PORT"; fi
    local started=$EPOCHREALTIME owner
    # a fresh data directory every start: no state survives from an earlier session
    mkdir -p "$RUN"
    rm -rf --one-file-system "$RUN/data" "$RUN/tmp"
    rm -f "$RUN/error.log" "$RUN/mysqld.pid" "$RUN/mysqld.sock" "$RUN/mysqld.sock.lock"
    mkdir "$RUN/tmp"
    owner=$(in_root id -u mysql):$(in_root id -g mysql)
    chown "$owner" "$RUN" "$RUN/tmp"
    chmod 750 "$RUN" "$RUN/tmp"
    # shellcheck disable=SC2016  # $1, $2 and $@ are the inner shell's
    local ns=(unshare --mount --propagation private sh -c
              'mount --bind "$1" "$2/run" && mount -t proc proc "$2/proc" && shift 2 &&
               exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 chroot "$@"' sh "$RUN" "$ROOT" "$ROOT")
    local common=(mysqld --no-defaults --user=mysql --datadir=/run/data --tmpdir=/run/tmp --log-error=/run/error.log
                  --skip-log-bin)
    "${ns[@]}" "${common[@]}" --initialize-insecure </dev/null >/dev/null 2>&1 ||
        { tail -n 20 "$RUN/error.log" >&2; die "mysqld --initialize-insecure failed (log: $RUN/error.log)"; }
    # in the background, in its own session, holding none of our files (the lock, a caller's pipes)
    ( close_fds; exec setsid "${ns[@]}" "${common[@]}" --bind-address=127.0.0.1 --port="$PORT" --mysqlx=OFF \
        --socket=/run/mysqld.sock --pid-file=/run/mysqld.pid --secure-file-priv=/run/tmp \
        --innodb-flush-log-at-trx-commit=2 ) </dev/null >/dev/null 2>&1 &
    local launched=$! i
    for i in $(seq 1 600); do
        answers && [ -n "$(running_pid)" ] && break
        kill -0 "$launched" 2>/dev/null || { tail -n 20 "$RUN/error.log" >&2; die "mysqld exited (log: $RUN/error.log)"; }
        [ "$i" = 600 ] && die "mysqld did not answer within 120 s (log: $RUN/error.log)"
        sleep 0.2
    done
    # root@localhost has no password after --initialize-insecure; TCP logins from 127.0.0.1 and ::1 count as
    # localhost, so the test account gets the same password under all three names
    local pw host sql=""
    pw=$(sql_quote "$PASSWORD")
    for host in localhost 127.0.0.1 ::1; do
        sql="$sql CREATE USER IF NOT EXISTS '$ACCOUNT'@'$host' IDENTIFIED BY $pw;
                  ALTER USER '$ACCOUNT'@'$host' IDENTIFIED BY $pw;
                  GRANT ALL ON *.* TO '$ACCOUNT'@'$host' WITH GRANT OPTION;"
    done
    printf '%s\n' "$sql" | in_root mysql --no-defaults --protocol=TCP -h127.0.0.1 -P"$PORT" -uroot >/dev/null ||
        die "could not create the test account $ACCOUNT (log: $RUN/error.log)"
    say "$(in_root mysqld --version | sed 's/^.*Ver //') on 127.0.0.1:$PORT (pid $(running_pid)," \
        "user $ACCOUNT) in $(elapsed "$started") s"
}

stop() {
    need_root stop
    lock_run
    local pid i
    pid=$(running_pid)
    if [ -z "$pid" ]; then say "not running"; return 0; fi
    kill -TERM "$pid"
    for i in $(seq 1 300); do
        kill -0 "$pid" 2>/dev/null || break
        if [ "$i" = 300 ]; then
            say "mysqld (pid $pid) ignored SIGTERM for 60 s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
        fi
        sleep 0.2
    done
    rm -rf --one-file-system "$RUN/data" "$RUN/tmp"
    say "stopped (pid $pid)"
}

status() {
    local pid
    pid=$(running_pid)
    if [ -n "$pid" ] && answers; then say "running (pid $pid) on 127.0.0.1:$PORT"; return 0; fi
    if [ -n "$pid" ]; then say "mysqld (pid $pid) runs but does not answer on 127.0.0.1:$PORT"; return 1; fi
    if [ -x "$ROOT/usr/sbin/mysqld" ]; then say "not running (chroot $ROOT is built)"; else say "not built ($ROOT)"; fi
    return 1
}

case ${1:-} in
    ensure|start|stop|status) "$1" ;;
    *) echo "usage: $0 ensure|start|stop|status" >&2; exit 2 ;;
esac
