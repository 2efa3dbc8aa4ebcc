#!/bin/sh
# Container entrypoint: write the cron files, start cron, show the jobs' log, stop cleanly.
#
#   start.sh            validate, write /etc/cron.d/{ftp_log_cron,mysql_sync_cron}, run cron (PID 1)
#   start.sh run JOB    what cron runs: JOB (ftp_log or mysql_sync) under flock, output to cron.log
#   start.sh health     the HEALTHCHECK: exit 1 when an enabled job has not succeeded for too long
#
# Schedules: edit the defaults here, or set FTP_CRON_SCHEDULE / MYSQL_SYNC_CRON_SCHEDULE
# ("off" disables a job).
set -eu

FTP_CRON_SCHEDULE=${FTP_CRON_SCHEDULE:-"*/5 * * * *"}
MYSQL_SYNC_CRON_SCHEDULE=${MYSQL_SYNC_CRON_SCHEDULE:-"2,17,32,47 * * * *"}
RUN_ON_START=${RUN_ON_START:-false}
HEALTH_MAX_AGE_MINUTES=${HEALTH_MAX_AGE_MINUTES:-60}
CRON_LOG_MAX_BYTES=${CRON_LOG_MAX_BYTES:-10485760}
CRON_LOG_KEEP=${CRON_LOG_KEEP:-5}
STOP_TIMEOUT=${STOP_TIMEOUT:-8}
JOB_USER=${JOB_USER:-datasync}
APP_DIR=${DATASYNC_APP_DIR:-/app}
LOG_DIR=${DATASYNC_LOG_DIR:-$APP_DIR/logs}
RUN_DIR=${DATASYNC_RUN_DIR:-/run/datasync}
CRON_DIR=${DATASYNC_CRON_DIR:-/etc/cron.d}
PYTHON=${DATASYNC_PYTHON:-python3}
LOG_FILE=$LOG_DIR/cron.log

stamp() { date -u '+%Y-%m-%d %H:%M:%S'; }
log() { echo "$(stamp) start.sh: $*" >>"$LOG_FILE"; }
die() { echo "start.sh: $*" >&2; exit 2; }

script_of() {
    case $1 in
        ftp_log) echo ftp_log_service.py ;;
        mysql_sync) echo mysql_sync_service.py ;;
        *) die "unknown job '$1' (ftp_log or mysql_sync)" ;;
    esac
}

# config ARGS: python -m datasync.config (the settings registry: variable lists, cron files, checks).
config() { (cd "$APP_DIR" && "$PYTHON" -m datasync.config --prog start.sh "$@"); }

# cron_files [--check]: check both schedules and each enabled job's required settings, then (without
# --check) write each job's cron file with exactly the variables it reads; values no cron line can
# carry exactly go to NAME_FILE files of the job user (datasync/config/cron.py).
cron_files() {
    config cron-file "$@" --cron-dir "$CRON_DIR" --env-dir "$RUN_DIR/env" --user "$JOB_USER" \
        --command "$0 run" --set "DATASYNC_APP_DIR=$APP_DIR" --set "DATASYNC_LOG_DIR=$LOG_DIR" \
        --set "DATASYNC_RUN_DIR=$RUN_DIR" --set "DATASYNC_PYTHON=$PYTHON" \
        --set "CRON_LOG_MAX_BYTES=$CRON_LOG_MAX_BYTES" --set "CRON_LOG_KEEP=$CRON_LOG_KEEP" \
        "ftp_log=$FTP_CRON_SCHEDULE" "mysql_sync=$MYSQL_SYNC_CRON_SCHEDULE"
}

# ---------------------------------------------------------------- validation

validate() {
    case $RUN_ON_START in true | false) ;; *) die "RUN_ON_START must be true or false, got '$RUN_ON_START'" ;; esac
    for name in HEALTH_MAX_AGE_MINUTES CRON_LOG_MAX_BYTES CRON_LOG_KEEP STOP_TIMEOUT; do
        value=""
        eval "value=\$$name"
        case $value in "" | *[!0-9]*) die "$name must be a whole number, got '$value'" ;; esac
    done
    for name in JOB_UID JOB_GID; do
        value=""
        eval "value=\${$name:-}"
        case $value in
            "") ;;
            *[!0-9]* | 0) die "$name must be a whole number other than 0 (jobs never run as root), got '$value'" ;;
        esac
    done
    id "$JOB_USER" >/dev/null 2>&1 || die "JOB_USER '$JOB_USER' does not exist"
    cron_files --check >/dev/null || exit 2
}

# ---------------------------------------------------------------- the job user and the log folder

# The jobs write and rotate cron.log in the log folder, usually a bind mount of the host's ./logs.
# They run as the folder's owner (its uid; JOB_GID or the folder's gid), so the host user who owns the
# checkout keeps full use of the folder and every file in it; the image's user is renumbered to match.
# start.sh never changes the owner of a folder a non-root user owns: a JOB_UID other than that owner
# stops it (exit 2). A folder owned by root (a named volume, a server's checkout of root's) is handed
# to the job user (JOB_UID/JOB_GID, or the image's 10001).
job_user() {
    uid=${JOB_UID:-} gid=${JOB_GID:-}
    owner=$(stat -c %u "$LOG_DIR")
    if [ "$owner" != 0 ]; then
        [ -z "$uid" ] || [ "$uid" = "$owner" ] || die "JOB_UID=$uid, but the logs folder $LOG_DIR belongs to" \
            "uid $owner: start.sh never takes a host user's folder; unset JOB_UID (the jobs then run as uid" \
            "$owner) or chown the folder to $uid on the host"
        uid=$owner
        [ -n "$gid" ] || gid=$(stat -c %g "$LOG_DIR")
        [ "$gid" != 0 ] || gid=""
    fi
    if [ -n "$gid" ] && [ "$(id -g "$JOB_USER")" != "$gid" ]; then
        groupmod -o -g "$gid" "$(id -gn "$JOB_USER")"  # the user's primary group follows
    fi
    if [ -n "$uid" ] && [ "$(id -u "$JOB_USER")" != "$uid" ]; then
        usermod -o -u "$uid" "$JOB_USER"
    fi
    if [ "$owner" = 0 ]; then
        chown "$JOB_USER:$(id -g "$JOB_USER")" "$LOG_DIR"
    fi
}

# ---------------------------------------------------------------- running a job (as cron does)

rotate_log() {
    size=$(wc -c <"$LOG_FILE" 2>/dev/null || echo 0)
    [ "$size" -gt "$CRON_LOG_MAX_BYTES" ] || return 0
    (
        flock 8
        size=$(wc -c <"$LOG_FILE" 2>/dev/null || echo 0)
        [ "$size" -gt "$CRON_LOG_MAX_BYTES" ] || exit 0
        i=$CRON_LOG_KEEP
        while [ "$i" -gt 1 ]; do
            [ ! -e "$LOG_FILE.$((i - 1))" ] || mv -f "$LOG_FILE.$((i - 1))" "$LOG_FILE.$i"
            i=$((i - 1))
        done
        mv -f "$LOG_FILE" "$LOG_FILE.1"
    ) 8>>"$RUN_DIR/rotate.lock"
}

run_job() {
    script=$(script_of "$1")
    rotate_log
    exec >>"$LOG_FILE" 2>&1
    exec 9>>"$RUN_DIR/$1.lock"
    if ! flock -n 9; then
        echo "$(stamp) start.sh: $1: the previous run is still going; this run is skipped (flock)"
        exit 75
    fi
    cd "$APP_DIR"
    "$PYTHON" "$script" &
    pid=$!
    echo "$pid" >"$RUN_DIR/$1.pid"
    rc=0
    wait "$pid" || rc=$?
    if [ "$rc" -eq 0 ]; then
        touch "$RUN_DIR/$1.ok"
    else
        echo "$(stamp) start.sh: $1 exited with code $rc"
    fi
    rm -f "$RUN_DIR/$1.pid"  # last: the entrypoint waits for this before it exits
    exit "$rc"
}

# ---------------------------------------------------------------- health

health() {
    if ! { [ -f "$RUN_DIR/cron.pid" ] && kill -0 "$(cat "$RUN_DIR/cron.pid")" 2>/dev/null; }; then
        echo "cron is not running"
        exit 1
    fi
    for job in ftp_log mysql_sync; do
        [ -e "$CRON_DIR/${job}_cron" ] || continue
        if [ -e "$RUN_DIR/$job.ok" ]; then
            recent=$(find "$RUN_DIR/$job.ok" -mmin "-$HEALTH_MAX_AGE_MINUTES")
        else  # no success yet: healthy while the container is younger than the limit
            recent=$(find "$RUN_DIR/started" -mmin "-$HEALTH_MAX_AGE_MINUTES")
        fi
        [ -n "$recent" ] || { echo "$job has not succeeded for $HEALTH_MAX_AGE_MINUTES minutes"; exit 1; }
    done
    echo ok
}

# ---------------------------------------------------------------- main (PID 1)

running_jobs() {  # the pids of jobs still running (each `start.sh run` removes its pid file last)
    for job in ftp_log mysql_sync; do
        [ ! -f "$RUN_DIR/$job.pid" ] || echo "$job:$(cat "$RUN_DIR/$job.pid" 2>/dev/null)"
    done
}

# On SIGTERM (docker compose stop): cron stops starting jobs; each running job gets SIGTERM once
# (it cancels its statement, rolls back and exits 143) and STOP_TIMEOUT seconds to finish; one that
# is still running then is killed, with a line saying so. Keep STOP_TIMEOUT below Compose's
# stop_grace_period (docker-compose.yaml), or the engine kills the container first (exit 137).
stop() {
    log "stopping: SIGTERM to cron and to running jobs (their open transaction rolls back)"
    kill -TERM "$cron_pid" 2>/dev/null || true
    signalled=" "
    ticks=0
    while [ -n "$(running_jobs)" ] && [ "$ticks" -lt $((STOP_TIMEOUT * 10)) ]; do
        for entry in $(running_jobs); do  # also a job cron started just before it stopped
            case $signalled in *" $entry "*) continue ;; esac
            kill -TERM "${entry#*:}" 2>/dev/null || true
            signalled="$signalled$entry "
        done
        sleep 0.1
        ticks=$((ticks + 1))
    done
    for entry in $(running_jobs); do
        log "${entry%%:*} (pid ${entry#*:}) still running ${STOP_TIMEOUT}s after SIGTERM; killing it (SIGKILL)"
        kill -KILL "${entry#*:}" 2>/dev/null || true
    done
    ticks=0
    while [ -n "$(running_jobs)" ] && [ "$ticks" -lt 20 ]; do  # let `start.sh run` log the exit code
        sleep 0.1
        ticks=$((ticks + 1))
    done
    sleep 0.2  # let tail show the last lines
    kill "$tail_pid" 2>/dev/null || true
    rm -f "$RUN_DIR/cron.pid"
    exit 0
}

main() {
    validate
    mkdir -p "$RUN_DIR" "$LOG_DIR"
    job_user
    rm -rf "$RUN_DIR/env" "$RUN_DIR"/*.pid
    chown "$JOB_USER" "$RUN_DIR"
    touch "$LOG_FILE" "$RUN_DIR/started"
    chown "$JOB_USER:$(id -g "$JOB_USER")" "$LOG_FILE"
    tail -n 0 -F "$LOG_FILE" 2>/dev/null &
    tail_pid=$!
    trap 'kill "$tail_pid" 2>/dev/null || true' EXIT
    trap stop TERM INT
    log "jobs run as $JOB_USER (uid $(id -u "$JOB_USER"), gid $(id -g "$JOB_USER")); logs in $LOG_FILE"
    done=$(cron_files) || exit 2
    echo "$done" | while IFS= read -r line; do log "$line"; done
    cron -f &
    cron_pid=$!
    echo "$cron_pid" >"$RUN_DIR/cron.pid"
    log "cron started (pid $cron_pid)"
    if [ "$RUN_ON_START" = true ]; then
        for job in ftp_log mysql_sync; do
            [ -e "$CRON_DIR/${job}_cron" ] || continue
            log "$job: RUN_ON_START=true, running once now"
            setpriv --reuid "$JOB_USER" --regid "$(id -g "$JOB_USER")" --init-groups "$0" run "$job" &
        done
    fi
    while kill -0 "$cron_pid" 2>/dev/null; do
        wait "$cron_pid" || true
    done
    log "cron exited; stopping"
    kill "$tail_pid" 2>/dev/null || true
    exit 1
}

case ${1:-} in
    run) script_of "${2:-}" >/dev/null; run_job "$2" ;;
    health) health ;;
    "") main ;;
    *) die "usage: start.sh [run ftp_log|mysql_sync | health]" ;;
esac
