"""Plain FTP and explicit FTPS (ftplib): MLSD/MLST listings, or NLST + SIZE + MDTM on servers without them.

Driver errors (socket, ssl, ftplib) leave as TransferError through ``translated``; at login,
what retrying cannot fix -- a refused login (530), an untrusted certificate -- is a ConfigError
(exit 2) through the ``refused`` hook of ``with_retries``.
"""

from __future__ import annotations

import ftplib
import logging
import posixpath
import ssl
from datetime import UTC, datetime

from ...errors import ConfigError
from ...report import one_line
from ...retry import with_retries
from .base import CHUNK, Remote, RemoteFile, check_name, translator

log = logging.getLogger("datasync.ftp")
DRIVER_ERRORS = (OSError, EOFError, ftplib.Error)
translated = translator(DRIVER_ERRORS)
UNSUPPORTED = ("500", "501", "502", "504")  # replies of a server that lacks a command


class FtpRemote(Remote):
    """ftplib: plain FTP or explicit FTPS; falls back to NLST + SIZE + MDTM, and to reading past REST."""

    def __init__(self, ftp, common):
        super().__init__(ftp, common)
        self.ftp = None
        self.banner = ""
        self.mlsd = self.mlst = self.rest = True  # until the server says it lacks them

    # ------------------------------------------------------------ session

    def open(self):
        self.ftp = with_retries(self._login, self.what, self.common, DRIVER_ERRORS, refused=self._refused)
        try:
            self.home = self.ftp.pwd()
        except ftplib.Error:
            self.home = "/"
        return self

    def _login(self):
        """One login attempt: connect, log in, TLS for the data channel (FTPS), passive mode, binary."""
        s = self.settings
        timeout = self.common.connect_timeout
        client = ftplib.FTP_TLS(context=self._tls_context(), timeout=timeout) if s.protocol == "ftps" \
            else ftplib.FTP(timeout=timeout)
        try:
            client.connect(s.host, s.port)
            client.login(s.user, s.password.value)
            if s.protocol == "ftps":
                client.prot_p()
            client.set_pasv(s.passive)
            client.voidcmd("TYPE I")
        except BaseException:
            client.close()
            raise
        self.banner = client.welcome
        return client

    def _refused(self, exc):
        """What no retry can fix, as a ConfigError: a refused login, an untrusted certificate."""
        if isinstance(exc, ftplib.error_perm):
            reason = one_line(exc)
            what = "refused the login" if reason.startswith("530") else "refused the session"
            return ConfigError(f"{self.what} {what}: {reason}")
        if isinstance(exc, ssl.SSLCertVerificationError):
            return ConfigError(f"{self.what}: server certificate not trusted ({exc.verify_message}); set "
                               "FTPS_CA_FILE to the CA that signed it (FTPS_VERIFY=false skips the check)")
        return None

    def _tls_context(self):
        """FTPS: verify the server against the system CAs or FTPS_CA_FILE, unless FTPS_VERIFY=false."""
        if not self.settings.ftps_verify:
            log.warning("FTPS_VERIFY=false: the server certificate is NOT verified; "
                        "anyone in the network path can read the password")
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        return ssl.create_default_context(cafile=self.settings.ftps_ca_file or None)

    def version(self):
        return " ".join((self.banner or "").split())

    def close(self):
        """Log out (QUIT), or just close when the server does not answer it."""
        if self.ftp is not None:
            try:
                self.ftp.quit()
            except DRIVER_ERRORS:
                self.ftp.close()
            self.ftp = None

    def abort(self):
        """Close the connection without a word: the server may be stuck, or out of step."""
        if self.ftp is not None:
            self.ftp.close()
            self.ftp = None

    # ------------------------------------------------------------ listing and stat

    def list_dir(self, folder):
        """(path, kind, size, mtime) for each entry of ``folder``: MLSD, else NLST + SIZE + MDTM."""
        with translated(f"cannot list {folder}"):
            if self.mlsd:
                try:
                    return list(self._mlsd(folder))
                except ftplib.error_perm as exc:
                    if not str(exc).startswith(UNSUPPORTED):
                        raise
                    log.info("server does not support MLSD (%s); listing with NLST, SIZE and MDTM", one_line(exc))
                    self.mlsd = False
            return list(self._nlst(folder))

    def _mlsd(self, folder):
        for name, facts in self.ftp.mlsd(folder, ["type", "size", "modify"]):
            kind = facts.get("type", "").lower()
            if name in (".", "..") or kind not in ("file", "dir"):
                continue
            yield posixpath.join(folder, name), kind, int(facts.get("size") or 0), _ftp_time(facts.get("modify"))

    def _nlst(self, folder):
        """For servers without MLSD: names from NLST, then SIZE and MDTM each (a folder refuses SIZE)."""
        try:
            names = self.ftp.nlst(folder)
        except ftplib.error_perm as exc:  # many servers answer 550 for an empty folder
            if str(exc).startswith("550"):
                return
            raise
        self.ftp.voidcmd("TYPE I")  # SIZE is refused (or counts CRLF) in ASCII mode
        for name in names:
            base = posixpath.basename(name.rstrip("/"))
            if base in (".", "..", ""):
                continue
            path = posixpath.join(folder, base)
            found = self._size_and_time(path)
            if found is not None:
                yield path, "file", found.size, found.mtime
            elif self._is_dir(path):
                yield path, "dir", 0, None

    def stat(self, path):
        """The file as the server sees it now (MLST, else MDTM + SIZE), or None when there is no such file.

        One command where the server has MLST; else the size is asked last, so that right
        before a delete the answer is as fresh as the protocol allows.
        """
        with translated("cannot read its size and time"):
            if self.mlst:
                try:
                    return self._mlst(check_name(path))
                except ftplib.error_perm as exc:
                    if not str(exc).startswith(UNSUPPORTED):
                        raise
                    self.mlst = False
            self.ftp.voidcmd("TYPE I")
            return self._time_and_size(check_name(path))

    def _mlst(self, path):
        """MLST's facts of one path (the reply's line that starts with a space); None for no such file."""
        try:
            reply = self.ftp.sendcmd(f"MLST {path}")
        except ftplib.error_perm as exc:
            if str(exc).startswith("550"):
                return None
            raise
        facts_line = next((line for line in reply.splitlines() if line.startswith(" ")), "")
        facts = dict(f.partition("=")[::2] for f in facts_line.strip().partition(" ")[0].split(";") if "=" in f)
        facts = {k.lower(): v for k, v in facts.items()}
        if facts.get("type", "").lower() != "file":
            return None
        return RemoteFile(path, int(facts.get("size") or 0), _ftp_time(facts.get("modify")))

    def _time_and_size(self, path):
        try:
            mtime = _ftp_time(self.ftp.voidcmd(f"MDTM {path}")[4:].strip())
            return RemoteFile(path, self.ftp.size(path), mtime)
        except ftplib.error_perm:  # 550: no such file, or not a regular file
            return None

    def _size_and_time(self, path):
        """SIZE and MDTM (in binary mode); None when SIZE is refused: not a regular file, or none at all."""
        try:
            size = self.ftp.size(path)
        except ftplib.error_perm:
            return None
        return RemoteFile(path, size, _ftp_time(self.ftp.voidcmd(f"MDTM {path}")[4:].strip()))

    def _is_dir(self, path):
        try:
            self.ftp.cwd(path)
            self.ftp.cwd(self.home)
            return True
        except ftplib.error_perm:
            return False

    # ------------------------------------------------------------ reading

    def fetch(self, path, offset=0):
        """The file's bytes from ``offset`` to its end, in chunks; TransferError if cut short."""
        conn, skip = self._retr(check_name(path), offset)
        client, finished = self.ftp, False
        try:
            with translated("download interrupted"):
                with conn:
                    while data := conn.recv(CHUNK):
                        if skip:  # a server without REST: read past what is already loaded
                            data, skip = data[skip:], max(0, skip - len(data))
                            if not data:
                                continue
                        yield data
                self.ftp.voidresp()  # 226 only when the server sent the whole file
            finished = True
        finally:
            # the control connection is out of step (or the run is stopping): drop it, without
            # waiting for the server.  Only the connection this download used.
            if not finished and self.ftp is client:
                self.abort()
            elif not finished:
                client.close()

    def _retr(self, path, offset):
        """(data connection, bytes to skip): REST when the server has it, else from byte 0."""
        with translated(f"cannot start download at byte {offset}"):
            self.ftp.voidcmd("TYPE I")  # listings switch to ASCII; REST and exact bytes need binary
            if offset and self.rest:
                try:
                    return self.ftp.transfercmd(f"RETR {path}", rest=offset), 0
                except ftplib.error_perm as exc:
                    if not str(exc).startswith(UNSUPPORTED):
                        raise
                    log.warning("server refuses REST (%s); files that grew are read again from the start",
                                one_line(exc))
                    self.rest = False
            return self.ftp.transfercmd(f"RETR {path}"), offset

    def head(self, path, length):
        """The first ``length`` bytes (for the fingerprint of a file that grew)."""
        data = bytearray()
        chunks = self.fetch(path)
        for chunk in chunks:
            data += chunk
            if len(data) >= length:
                break
        chunks.close()
        if self.ftp is None:
            self.open()
        return bytes(data[:length])

    # ------------------------------------------------------------ changing

    def delete(self, path):
        with translated("cannot delete"):
            self.ftp.delete(check_name(path))

    def rename(self, path, dest):
        with translated(f"cannot move to {dest}"):
            self.ftp.rename(check_name(path), check_name(dest))

    def makedirs(self, folder):
        with translated(f"cannot create {folder}"):
            parts = [p for p in folder.split("/") if p]
            for i in range(1, len(parts) + 1):
                current = "/" + "/".join(parts[:i])
                if not self._is_dir(current):
                    self.ftp.mkd(current)


def _ftp_time(value):
    """MLSD/MLST/MDTM times are UTC: YYYYMMDDHHMMSS[.fff]."""
    if not value:
        return None
    try:
        return datetime.strptime(value[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None
