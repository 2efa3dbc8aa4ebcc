"""Serve /srv/ftp over FTP on port 2121 for the demo stack; login from FTP_USER / FTP_PASS (never argv)."""

import os
import time
from pathlib import Path

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer

ROOT = Path("/srv/ftp")
hour_ago = time.time() - 3600
for path in ROOT.rglob("*"):  # the samples are "old" machine logs, past FTP_MIN_FILE_AGE
    os.utime(path, (hour_ago, hour_ago))

authorizer = DummyAuthorizer()
authorizer.add_user(os.environ["FTP_USER"], os.environ["FTP_PASS"], str(ROOT), perm="elradfmwMT")
FTPHandler.authorizer = authorizer
FTPHandler.passive_ports = range(30000, 30010)
FTPServer(("0.0.0.0", 2121), FTPHandler).serve_forever()
