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
JOB_USER=${JOB_USER:-datasync}
APP_DIR=${DATASYNC_APP_DIR:-/app}
LOG_DIR=${DATASYNC_LOG_DIR:-$APP_DIR/logs}
RUN_DIR=${DATASYNC_RUN_DIR:-/run/datasync}
CRON_DIR=${DATASYNC_CRON_DIR:-/etc/cron.d}
PYTHON=${DATASYNC_PYTHON:-python3}
LOG_FILE=$LOG_DIR/cron.log

# The variables each job reads (datasync/settings.py; tests/test_container.py keeps these in step).
COMMON_VARS="POSTGRES_HOST POSTGRES_PORT POSTGRES_DB POSTGRES_USER POSTGRES_PASSWORD POSTGRES_SSLMODE
POSTGRES_SSLROOTCERT DATASYNC_STATE_SCHEMA LOG_LEVEL LOG_JSON CONNECT_RETRIES CONNECT_RETRY_DELAY CONNECT_TIMEOUT
LOCK_TIMEOUT"
MYSQL_VARS="MYSQL_HOST MYSQL_PORT MYSQL_DB MYSQL_USER MYSQL_PASSWORD MYSQL_SSL_CA MYSQL_SSL_CERT MYSQL_SSL_KEY
MYSQL_TABLES MYSQL_EXCLUDE_TABLES MYSQL_TARGET_SCHEMA MYSQL_CURSOR_COLUMNS MYSQL_LOOKBACK_SECONDS MYSQL_SYNC_MODES
MYSQL_SKIP_DELETES MYSQL_TINYINT1_AS_BOOLEAN MYSQL_ADOPT_TABLES MYSQL_DROP_GONE_TABLES FTP_TARGET_SCHEMA"
FTP_VARS="FTP_PROTOCOL FTP_HOST FTP_PORT FTP_USER FTP_PASS FTP_PASSIVE FTPS_VERIFY FTPS_CA_FILE SFTP_PRIVATE_KEY
SFTP_PRIVATE_KEY_PASSPHRASE SFTP_KNOWN_HOSTS SFTP_HOST_KEY SFTP_INSECURE_ACCEPT_ANY_HOST_KEY FTP_REMOTE_DIR
FTP_RECURSIVE FTP_FILE_PATTERN FTP_MIN_FILE_AGE DELETE_AFTER_SYNC FTP_ARCHIVE_DIR FTP_TARGET_SCHEMA FTP_TARGET_TABLE
FTP_REJECTS_TABLE FTP_MACHINE_ID_REGEX LOG_FORMAT LOG_FORMATS LOG_REGEX LOG_ENCODING LOG_FALLBACK_ENCODING
LOG_TIMEZONE LOG_MAX_LINE_BYTES"
MYSQL_REQUIRED="POSTGRES_HOST POSTGRES_DB POSTGRES_USER MYSQL_HOST MYSQL_DB MYSQL_USER"
FTP_REQUIRED="POSTGRES_HOST POSTGRES_DB POSTGRES_USER FTP_HOST FTP_USER"

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

# ---------------------------------------------------------------- validation

# is_set NAME: NAME or NAME_FILE is set and not empty.
is_set() { eval "[ -n \"\${$1:-}\" ] || [ -n \"\${$1_FILE:-}\" ]"; }

check_required() {
    missing=""
    for name in $2; do
        is_set "$name" || missing="$missing $name"
    done
    [ -z "$missing" ] || die "$1 job: required variable(s) not set:$missing (or their _FILE variants); see .env.example"
}

# check_field VALUE LOW HIGH NAME: one cron field (*, n, n-m, lists, /step, three-letter names).
check_field() {
    old_ifs=$IFS
    IFS=,
    set -f
    for item in $1; do
        IFS=$old_ifs
        set +f
        range=${item%%/*}
        step=${item#"$range"}
        case $step in "" | /[0-9] | /[0-9][0-9]) ;; *) return 1 ;; esac
        case $range in
            "*") continue ;;
            *[A-Za-z]*)
                for name in ${range%%-*} ${range#*-}; do
                    case $4:$(echo "$name" | tr '[:upper:]' '[:lower:]') in
                        month:jan | month:feb | month:mar | month:apr | month:may | month:jun | month:jul | \
                            month:aug | month:sep | month:oct | month:nov | month:dec) ;;
                        weekday:sun | weekday:mon | weekday:tue | weekday:wed | weekday:thu | weekday:fri | \
                            weekday:sat) ;;
                        *) return 1 ;;
                    esac
                done
                continue ;;
        esac
        for number in ${range%%-*} ${range#*-}; do
            case $number in "" | *[!0-9]*) return 1 ;; esac
            [ "$number" -ge "$2" ] && [ "$number" -le "$3" ] || return 1
        done
    done
    IFS=$old_ifs
    set +f
}

check_schedule() {
    case $2 in
        off | @hourly | @daily | @midnight | @weekly | @monthly | @yearly | @annually) return 0 ;;
    esac
    set -f
    # shellcheck disable=SC2086 # split the pattern into its fields on purpose
    set -- "$1" $2
    set +f
    [ $# -eq 6 ] || die "$1='$(shift; echo "$*")' is not a cron pattern: it needs 5 fields (minute hour day month weekday)"
    if ! { check_field "$2" 0 59 minute && check_field "$3" 0 23 hour && check_field "$4" 1 31 day &&
        check_field "$5" 1 12 month && check_field "$6" 0 7 weekday; }; then
        die "$1='$2 $3 $4 $5 $6' is not a valid cron pattern (minute 0-59, hour 0-23, day 1-31, month 1-12, weekday 0-7)"
    fi
}

validate() {
    check_schedule FTP_CRON_SCHEDULE "$FTP_CRON_SCHEDULE"
    check_schedule MYSQL_SYNC_CRON_SCHEDULE "$MYSQL_SYNC_CRON_SCHEDULE"
    [ "$FTP_CRON_SCHEDULE" = off ] || check_required ftp_log "$FTP_REQUIRED"
    [ "$MYSQL_SYNC_CRON_SCHEDULE" = off ] || check_required mysql_sync "$MYSQL_REQUIRED"
    case $RUN_ON_START in true | false) ;; *) die "RUN_ON_START must be true or false, got '$RUN_ON_START'" ;; esac
    for name in HEALTH_MAX_AGE_MINUTES CRON_LOG_MAX_BYTES CRON_LOG_KEEP; do
        value=""
        eval "value=\$$name"
        case $value in "" | *[!0-9]*) die "$name must be a whole number, got '$value'" ;; esac
    done
    id "$JOB_USER" >/dev/null 2>&1 || die "JOB_USER '$JOB_USER' does not exist"
}

# ---------------------------------------------------------------- cron files

# env_line NAME VALUE JOB: a cron environment line that hands VALUE over exactly.
# cron takes the value literally and removes one pair of surrounding quotes; a value with a line
# break, or with both kinds of quote, cannot be written that way: it goes to a 0600 file of the
# job user and the job reads NAME_FILE instead (every setting accepts a _FILE variant).
env_line() {
    nl='
'
    cr=$(printf '\r')
    case $2 in
        *"$nl"* | *"$cr"*) ;;
        *\"*\'* | *\'*\"*) ;;
        *\"*) printf "%s='%s'\n" "$1" "$2"; return ;;
        *) printf '%s="%s"\n' "$1" "$2"; return ;;
    esac
    mkdir -p "$RUN_DIR/env/$3"
    chown "$JOB_USER" "$RUN_DIR/env" "$RUN_DIR/env/$3"
    printf '%s' "$2" >"$RUN_DIR/env/$3/$1"
    chown "$JOB_USER" "$RUN_DIR/env/$3/$1"
    chmod 0400 "$RUN_DIR/env/$3/$1"
    printf '%s_FILE="%s"\n' "$1" "$RUN_DIR/env/$3/$1"
}

write_cron_file() {  # JOB SCHEDULE VARS
    file=$CRON_DIR/${1}_cron
    if [ "$2" = off ]; then
        rm -f "$file"
        log "$1: disabled (schedule off)"
        return
    fi
    (
        umask 077
        {
            echo "# written by start.sh at $(stamp); edit the schedule in start.sh or the environment"
            echo "SHELL=/bin/sh"
            echo "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
            echo "LANG=C.UTF-8"
            for name in DATASYNC_APP_DIR DATASYNC_LOG_DIR DATASYNC_RUN_DIR DATASYNC_PYTHON CRON_LOG_MAX_BYTES \
                CRON_LOG_KEEP $3; do
                eval "isset=\${$name+x} value=\${$name-}"
                [ -z "$isset" ] || env_line "$name" "$value" "$1"
                eval "isset=\${${name}_FILE+x} value=\${${name}_FILE-}"
                [ -z "$isset" ] || env_line "${name}_FILE" "$value" "$1"
            done
            echo "$2 $JOB_USER $0 run $1"
        } >"$file.tmp"
        chmod 0600 "$file.tmp"
        mv "$file.tmp" "$file"
    )
    log "$1: scheduled '$2' as $JOB_USER"
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
    rm -f "$RUN_DIR/$1.pid"
    if [ "$rc" -eq 0 ]; then
        touch "$RUN_DIR/$1.ok"
    else
        echo "$(stamp) start.sh: $1 exited with code $rc"
    fi
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

stop() {
    log "stopping: SIGTERM to cron and to running jobs (their open transaction rolls back)"
    kill -TERM "$cron_pid" 2>/dev/null || true
    for pidfile in "$RUN_DIR"/*.pid; do
        [ -f "$pidfile" ] && [ "$pidfile" != "$RUN_DIR/cron.pid" ] || continue
        kill -TERM "$(cat "$pidfile")" 2>/dev/null || true
    done
    i=0
    while [ "$i" -lt 15 ] && ls "$RUN_DIR"/*_*.pid >/dev/null 2>&1; do
        sleep 0.1
        i=$((i + 1))
    done
    sleep 0.2  # let tail show the last lines
    kill "$tail_pid" 2>/dev/null || true
    rm -f "$RUN_DIR/cron.pid"
    exit 0
}

main() {
    validate
    mkdir -p "$RUN_DIR" "$LOG_DIR"
    rm -rf "$RUN_DIR/env" "$RUN_DIR"/*.pid
    chown "$JOB_USER" "$RUN_DIR" "$LOG_DIR"
    touch "$LOG_FILE" "$RUN_DIR/started"
    chown "$JOB_USER" "$LOG_FILE"
    tail -n 0 -F "$LOG_FILE" 2>/dev/null &
    tail_pid=$!
    trap 'kill "$tail_pid" 2>/dev/null || true' EXIT
    trap stop TERM INT
    write_cron_file ftp_log "$FTP_CRON_SCHEDULE" "$COMMON_VARS $FTP_VARS"
    write_cron_file mysql_sync "$MYSQL_SYNC_CRON_SCHEDULE" "$COMMON_VARS $MYSQL_VARS"
    cron -f &
    cron_pid=$!
    echo "$cron_pid" >"$RUN_DIR/cron.pid"
    log "cron started (pid $cron_pid); logs in $LOG_FILE"
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
