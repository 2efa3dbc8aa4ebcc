# The datasync image: cron runs ftp_log_service.py and mysql_sync_service.py as an unprivileged user.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DATASYNC_PYTHON=/usr/local/bin/python3

# cron runs the jobs; tini reaps and forwards signals; dos2unix guards against CRLF checkouts.
# pam_loginuid cannot work in a container (no audit), so cron's PAM stack must not require it.
# No version pins: the base image fixes the Debian release, and an exact pin would break the build at
# Debian's next point release of the package (DL3008 is ignored for that reason).
# The job user is renumbered at start-up to own the mounted logs folder (start.sh, JOB_UID/JOB_GID).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends cron tini dos2unix \
 && rm -rf /var/lib/apt/lists/* /etc/cron.d/* /etc/cron.daily/* \
 && sed -i 's/^session\s\+required\s\+pam_loginuid.so/session optional pam_loginuid.so/' /etc/pam.d/cron \
 && groupadd --system --gid 10001 datasync \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin datasync

WORKDIR /app

# Dependencies first: this layer is rebuilt only when requirements.txt changes (wheels only, no compiler).
COPY requirements.txt .
RUN pip install --only-binary=:all: -r requirements.txt

COPY datasync/ datasync/
COPY ftp_log_service.py mysql_sync_service.py ./
COPY start.sh /start.sh
RUN dos2unix /start.sh ./*.py && chmod 0755 /start.sh && mkdir -p /app/logs

VOLUME ["/app/logs"]

# Unhealthy when an enabled job has not succeeded for HEALTH_MAX_AGE_MINUTES (default 60).
HEALTHCHECK --interval=60s --timeout=10s --start-period=120s --retries=2 CMD ["/start.sh", "health"]

# cron needs root to switch to the job user; the jobs themselves run as "datasync".
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["/start.sh"]
