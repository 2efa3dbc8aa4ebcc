#!/usr/bin/env bash
# Test fixture: what the Docker test needs besides an engine, built once and cached.
#
#   standins.sh plugin   print a DOCKER_CONFIG folder whose cli-plugins/ has Compose v2 (Debian sid's
#                        docker-compose package, a static Go build; bookworm has only Compose 1.29)
#   standins.sh images   build the stand-ins for the registry images the demo stack names:
#                          datasync-test/python:3.11-slim-bookworm  (bookworm rootfs, Debian's Python 3.11)
#                          datasync-test/postgres:16-bookworm       (bookworm rootfs, PostgreSQL 15)
#                          datasync-test/mysql:8.4                  (sid rootfs, Oracle MySQL 9.7)
#
# No registry is reachable where this runs, so the bases are Debian rootfs made with debootstrap and
# `docker import`ed. Everything is cached under DATASYNC_DOCKER_CACHE (default
# /var/cache/datasync-test/docker): rootfs tarballs, the Compose plugin, and (in the engine) the images,
# labelled with a hash of their recipe so that a changed Dockerfile or entrypoint rebuilds them. A step
# that is interrupted leaves only *.tmp.* files behind, which the next run removes; a file becomes
# visible under its final name only once complete. Runs as root (debootstrap); uses the engine that
# DOCKER_HOST names.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${DATASYNC_DOCKER_CACHE:-/var/cache/datasync-test/docker}
MIRROR=${DATASYNC_DEBIAN_MIRROR:-http://deb.debian.org/debian}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

mkdir -p "$CACHE"
exec 8>>"$CACHE/.lock"
flock 8  # one builder at a time; a second test run waits here

say() { echo "standins.sh: $*" >&2; }

# run LOG CMD...: CMD's output goes to LOG; on failure its last lines are shown.
run() {
    local log=$1
    shift
    if ! "$@" >"$log" 2>&1; then
        say "failed: $*"
        tail -n 40 "$log" >&2
        return 1
    fi
}

# ---------------------------------------------------------------- Compose v2

plugin() {
    local config=$CACHE/docker-config
    if [ ! -x "$config/cli-plugins/docker-compose" ]; then
        say "fetching Compose v2 (Debian sid's docker-compose package)"
        rm -rf "$CACHE"/apt-sid.tmp.*
        local tmp=$CACHE/apt-sid.tmp.$$
        mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/deb"
        echo "deb [signed-by=$KEYRING] $MIRROR sid main" >"$tmp/sources.list"
        local apt=(-o "Dir::Etc::SourceList=$tmp/sources.list" -o Dir::Etc::SourceParts=/nonexistent
            -o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache=$tmp/cache" -o Dir::State::status=/dev/null
            -o APT::Sandbox::User=root)
        run "$tmp/update.log" apt-get "${apt[@]}" update
        (cd "$tmp/deb" && run "$tmp/download.log" apt-get "${apt[@]}" download docker-compose)
        dpkg-deb -x "$tmp"/deb/docker-compose_*.deb "$tmp/root"
        mkdir -p "$config/cli-plugins"
        cp "$tmp/root/usr/libexec/docker/cli-plugins/docker-compose" "$config/cli-plugins/docker-compose.tmp.$$"
        mv "$config/cli-plugins/docker-compose.tmp.$$" "$config/cli-plugins/docker-compose"
        rm -rf "$tmp"
    fi
    echo "$config"
}

# ---------------------------------------------------------------- base images

# rootfs SUITE: the image datasync-test/SUITE-rootfs, from $CACHE/rootfs/SUITE.tar (debootstrap minbase).
rootfs() {
    local suite=$1 tar=$CACHE/rootfs/$1.tar image=datasync-test/$1-rootfs
    if docker image inspect "$image" >/dev/null 2>&1; then
        return
    fi
    # Debian sid with mysql-server: tests/oracle-mysql.sh's cached chroot serves, when it is there (it is
    # renamed into place only when complete, and nothing writes into it after that)
    local chroot=${DATASYNC_MYSQL_CHROOT:-/var/cache/datasync-test/mysql-sid}
    if [ "$suite" = sid ] && [ ! -s "$tar" ] && [ -x "$chroot/usr/sbin/mysqld" ]; then
        say "importing the Oracle MySQL chroot $chroot as $image"
        tar -C "$chroot" --numeric-owner --exclude=./proc/* --exclude=./sys/* --exclude=./run/* -cf - . |
            docker import --change 'CMD ["/bin/bash"]' - "$image" >/dev/null
        return
    fi
    if [ ! -s "$tar" ]; then
        say "debootstrap $suite (about a minute)"
        mkdir -p "$CACHE/rootfs"
        rm -rf "$CACHE/rootfs/$suite".tmp.*
        local tmp=$CACHE/rootfs/$suite.tmp.$$
        mkdir -p "$tmp"
        run "$tmp/debootstrap.log" debootstrap --variant=minbase "$suite" "$tmp/root" "$MIRROR"
        if [ "$suite" = bookworm ]; then  # the real images also take updates and security fixes
            printf '%s\n' "deb $MIRROR bookworm main" "deb $MIRROR bookworm-updates main" \
                "deb http://deb.debian.org/debian-security bookworm-security main" >"$tmp/root/etc/apt/sources.list"
        fi
        rm -rf "$tmp"/root/var/cache/apt/archives/*.deb "$tmp"/root/var/lib/apt/lists/*
        tar -C "$tmp/root" --numeric-owner -cf "$tmp/rootfs.tar" .
        mv "$tmp/rootfs.tar" "$tar"
        rm -rf "$tmp"
    fi
    say "importing $tar as $image"
    docker import --change 'CMD ["/bin/bash"]' "$tar" "$image" >/dev/null
}

# standin NAME TAG BASE: build tests/docker/NAME as TAG unless TAG exists with the same recipe hash.
standin() {
    local name=$1 tag=$2 base=$3 context
    context=$(mktemp -d)
    cp -a "$HERE/$name/." "$context/"
    # apt and pip in the image reach the archive and the index the way the host does
    apt-config dump | grep -E '^Acquire::(Check-Valid-Until|Check-Date) ' >"$context/host-apt.conf" || true
    if [ "$name" = python ]; then
        cp /etc/ssl/certs/ca-certificates.crt "$context/host-ca-certificates.crt"
    fi
    local recipe
    recipe=$( (cd "$context" && find . -type f -print0 | sort -z | xargs -0 sha256sum;
        docker image inspect --format '{{.Id}}' "$base") | sha256sum | cut -c1-16)
    if [ "$(docker image inspect --format '{{index .Config.Labels "datasync.recipe"}}' "$tag" 2>/dev/null)" \
        = "$recipe" ]; then
        rm -rf "$context"
        return
    fi
    say "building $tag"
    local old
    old=$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
    run "$CACHE/build-$name.log" docker build --network host --build-arg "BASE=$base" \
        --label "datasync.recipe=$recipe" -t "$tag" "$context"
    rm -rf "$context"
    if [ -n "$old" ]; then  # the previous build, now untagged
        docker rmi "$old" >/dev/null 2>&1 || true
    fi
}

images() {
    rootfs bookworm
    rootfs sid
    standin python datasync-test/python:3.11-slim-bookworm datasync-test/bookworm-rootfs
    standin postgres datasync-test/postgres:16-bookworm datasync-test/bookworm-rootfs
    standin mysql datasync-test/mysql:8.4 datasync-test/sid-rootfs
}

case ${1:-} in
    plugin) plugin ;;
    images) images ;;
    *) echo "usage: standins.sh plugin|images" >&2; exit 2 ;;
esac
