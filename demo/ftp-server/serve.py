"""Serve /srv/ftp over FTP on port 2121 for the demo stack; login from FTP_USER / FTP_PASS (never argv).

``serve.py --check`` is the health check: it looks for the listening socket in /proc/net/tcp and
opens no connection, so the server logs nothing for it.
"""

import os
import signal
import sys
import time
from pathlib import Path

PORT = 2121


def listening():
    """True when something listens on PORT (state 0A in /proc/net/tcp or tcp6)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == PORT:
                return True
    return False


def stop(signum, frame):
    raise SystemExit(0)  # serve_forever() closes every connection and returns


def serve():
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.servers import FTPServer

    root = Path("/srv/ftp")
    hour_ago = time.time() - 3600
    for path in root.rglob("*"):  # the samples are "old" machine logs, past FTP_MIN_FILE_AGE
        os.utime(path, (hour_ago, hour_ago))

    authorizer = DummyAuthorizer()
    authorizer.add_user(os.environ["FTP_USER"], os.environ["FTP_PASS"], str(root), perm="elradfmwMT")
    FTPHandler.authorizer = authorizer
    FTPHandler.passive_ports = range(30000, 30010)
    signal.signal(signal.SIGTERM, stop)  # as PID 1, Python would ignore SIGTERM without a handler
    FTPServer(("0.0.0.0", PORT), FTPHandler).serve_forever()


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        sys.exit(0 if listening() else 1)
    serve()
