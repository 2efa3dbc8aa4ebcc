"""A Docker engine for the Docker test: the one that answers, or a private dockerd started for it.

The private engine is Debian's dockerd with its own socket, exec root and pid file in a fresh folder
under /tmp, and a data root kept in the cache (so built images survive between runs), started with
``--iptables=false --ip6tables=false --ip-forward=false --ip-masq=false --bridge=none``: it changes
nothing of the machine's networking, and containers get no network but the one the test gives them.
It is stopped by its PID; what dockerd leaves outside its folders (/etc/docker/key.json, /run/docker,
/run/containerd) is removed when it was not there before.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

CACHE = Path(os.environ.get("DATASYNC_DOCKER_CACHE", "/var/cache/datasync-test/docker"))
LEFT_BEHIND = (Path("/etc/docker/key.json"), Path("/run/docker"), Path("/run/containerd"))
FLAGS = ("--iptables=false", "--ip6tables=false", "--ip-forward=false", "--ip-masq=false", "--bridge=none")


def mounts_under(folder):
    """Mount points inside ``folder``, deepest first."""
    points = []
    with open("/proc/self/mounts") as table:
        for line in table:
            point = line.split()[1].encode().decode("unicode_escape")
            if point.startswith(f"{folder}/"):
                points.append(point)
    return sorted(points, key=len, reverse=True)


class Unavailable(Exception):
    """No engine answers and none can be started here (the message says what is missing)."""


def answers(env):
    try:
        result = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], env=env,
                                capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


class Engine:
    """``env`` is the environment under which ``docker`` talks to the engine (DOCKER_HOST, classic builder)."""

    def __init__(self):
        self.env = {**os.environ, "DOCKER_BUILDKIT": "0"}
        self.private = None  # the folder of a private engine
        self.process = None
        self.lock = None
        self.existed = {}

    def start(self):
        if shutil.which("docker") is None:
            raise Unavailable("no docker client (apt-get install docker.io)")
        if answers(self.env):
            return self
        if os.geteuid() != 0 or shutil.which("dockerd") is None:
            raise Unavailable("no Docker engine answers, and a private one needs root and dockerd "
                              "(apt-get install docker.io)")
        CACHE.mkdir(parents=True, exist_ok=True)
        self.lock = open(CACHE / "engine.lock", "a")  # one engine per data root
        fcntl.flock(self.lock, fcntl.LOCK_EX)
        self.existed = {path: path.exists() for path in LEFT_BEHIND}
        for attempt in (1, 2):
            if self._start_private():
                return self
            self.stop()
            if attempt == 1:  # a data root broken by an interrupted run: start from an empty one
                shutil.rmtree(CACHE / "engine", ignore_errors=True)
        raise Unavailable(f"the private dockerd did not start: {self.log_tail()}")

    def _start_private(self):
        self.private = Path(tempfile.mkdtemp(prefix="dsd-", dir="/tmp"))  # short: socket paths are limited
        sock = self.private / "docker.sock"
        command = ["dockerd", "-H", f"unix://{sock}", "--data-root", str(CACHE / "engine"),
                   "--exec-root", str(self.private / "exec"), "--pidfile", str(self.private / "dockerd.pid"), *FLAGS]
        with open(self.private / "dockerd.log", "w") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.env["DOCKER_HOST"] = f"unix://{sock}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and self.process.poll() is None:
            if sock.exists() and answers(self.env):
                return True
            time.sleep(0.5)
        return False

    def log_tail(self):
        try:
            return "\n".join((self.private / "dockerd.log").read_text().splitlines()[-15:])
        except (OSError, TypeError):
            return "(no log)"

    def stop(self):
        """Stop the private engine by its PID (its containers stop with it) and remove what it left."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self.private:
            for mount in mounts_under(self.private):  # dockerd leaves exec/netns/default mounted
                subprocess.run(["umount", "-l", mount], capture_output=True)
            shutil.rmtree(self.private, ignore_errors=True)
            self.private = None
        for path, existed in self.existed.items():
            if not existed:
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)

    def close(self):
        self.stop()
        if self.lock:
            self.lock.close()
            self.lock = None
