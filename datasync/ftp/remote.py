"""FTP, FTPS and SFTP behind one small interface.

    remote = connect(settings.ftp, settings.common)   # UnreachableError after bounded retries
    for f in remote.walk():                            # RemoteFile(path, size, mtime)
        for chunk in remote.fetch(f.path, offset): ... # streamed; TransferError if cut short
    remote.head(path, n); remote.delete(path); remote.move(path, dest); remote.close()

Driver errors (ftplib, ssl, socket, paramiko) leave this module as ``TransferError`` (one
file failed; the caller re-connects with ``reopen``) or ``UnreachableError``.  Nothing
here writes to the local disk: remote names only ever become remote paths.
"""

from __future__ import annotations

import base64
import ftplib
import hashlib
import logging
import posixpath
import ssl
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from io import StringIO

import paramiko

from ..errors import ConfigError, HostKeyRejected, TableError, UnreachableError
from ..report import one_line
from ..retry import with_retries

log = logging.getLogger("datasync.ftp")
CHUNK = 256 * 1024
MAX_DEPTH = 32


class TransferError(TableError):
    """A file could not be listed, read, deleted or moved; the connection may be gone."""


@dataclass(frozen=True)
class RemoteFile:
    path: str           # absolute remote path
    size: int
    mtime: datetime     # UTC


def connect(ftp, common):
    """An open FtpRemote or SftpRemote for the settings (bounded retries)."""
    remote = SftpRemote(ftp, common) if ftp.protocol == "sftp" else FtpRemote(ftp, common)
    remote.open()
    return remote


def reopen(remote):
    """After a failed transfer: drop the connection and log in again."""
    remote.close()
    remote.open()
    return remote


def _reason(exc):
    return " ".join(str(exc).split()) or exc.__class__.__name__


def check_name(path):
    """Refuse names no protocol command can carry (CR/LF would inject commands)."""
    if "\n" in path or "\r" in path or "\0" in path:
        raise TransferError("file name contains a line break or NUL; not loaded")
    return path


class Remote:
    """What both protocols share: walking folders, archive paths, delete and move."""

    ERRORS = (OSError,)

    def __init__(self, ftp, common):
        self.settings, self.common = ftp, common
        self.what = f"{ftp.protocol.upper()} server {ftp.host}:{ftp.port} (user {ftp.user})"

    def walk(self):
        """Every regular file under FTP_REMOTE_DIR (sub-folders when FTP_RECURSIVE), sorted by path."""
        skip = self.settings.archive_dir and self.absolute(self.settings.archive_dir)
        pending, files = [(self.absolute(self.settings.remote_dir), 0)], []
        while pending:
            folder, depth = pending.pop()
            for path, kind, size, mtime in self.list_dir(folder):
                if kind == "file":
                    files.append(RemoteFile(path, size, mtime))
                elif kind == "dir" and self.settings.recursive and depth < MAX_DEPTH and path != skip:
                    pending.append((path, depth + 1))
        return sorted(files, key=lambda f: f.path)

    def absolute(self, path):
        return posixpath.normpath(posixpath.join(self.home, path))

    def archive_path(self, path):
        """Where ``path`` goes in FTP_ARCHIVE_DIR: the same path relative to FTP_REMOTE_DIR."""
        base = self.absolute(self.settings.remote_dir)
        archive = self.absolute(self.settings.archive_dir)
        relative = posixpath.relpath(path, base)
        dest = posixpath.normpath(posixpath.join(archive, relative))
        if relative.startswith("..") or not dest.startswith(archive.rstrip("/") + "/"):
            raise TransferError(f"refusing to archive outside {archive}")
        return dest

    def delete(self, path):
        try:
            self._remove(check_name(path))
        except self.ERRORS as exc:
            raise TransferError(f"cannot delete: {_reason(exc)}") from exc

    def move(self, path, dest):
        """Rename into the archive; an existing file there is never overwritten (a UTC stamp is appended)."""
        try:
            self._makedirs(posixpath.dirname(dest))
            if self._exists(dest):
                dest = f"{dest}.{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}"
            self._rename(check_name(path), check_name(dest))
            return dest
        except self.ERRORS as exc:
            raise TransferError(f"cannot move to {dest}: {_reason(exc)}") from exc


class FtpRemote(Remote):
    """ftplib: plain FTP or explicit FTPS; MLSD, else NLST + SIZE + MDTM."""

    ERRORS = (OSError, EOFError, ftplib.Error)

    def __init__(self, ftp, common):
        super().__init__(ftp, common)
        self.ftp = None
        self.mlsd = self.rest = True
        self.home = "/"

    def open(self):
        self.ftp = with_retries(self._login, self.what, self.common, self.ERRORS, refused=self._refused)
        self.home = self._pwd()
        return self

    def _login(self):
        s = self.settings
        client = ftplib.FTP_TLS(context=self._tls_context(), timeout=self.common.connect_timeout) \
            if s.protocol == "ftps" else ftplib.FTP(timeout=self.common.connect_timeout)
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
        """What no retry can fix, as a ConfigError (exit 2): a refused login, an untrusted certificate."""
        if isinstance(exc, ftplib.error_perm):
            reason = one_line(exc)
            what = "refused the login" if reason.startswith("530") else "refused the session"
            return ConfigError(f"{self.what} {what}: {reason}")
        if isinstance(exc, ssl.SSLCertVerificationError):
            return ConfigError(f"{self.what}: server certificate not trusted ({exc.verify_message}); set "
                               "FTPS_CA_FILE to the CA that signed it (FTPS_VERIFY=false skips the check)")
        return None

    def _tls_context(self):
        if not self.settings.ftps_verify:
            log.warning("FTPS_VERIFY=false: the server certificate is NOT verified; "
                        "anyone in the network path can read the password")
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        return ssl.create_default_context(cafile=self.settings.ftps_ca_file or None)

    def _pwd(self):
        try:
            return self.ftp.pwd()
        except ftplib.Error:
            return "/"

    def version(self):
        return " ".join((self.banner or "").split())

    def close(self):
        if self.ftp is not None:
            try:
                self.ftp.quit()
            except self.ERRORS:
                self.ftp.close()
            self.ftp = None

    def list_dir(self, folder):
        """(path, kind, size, mtime) for each entry of ``folder``."""
        try:
            if self.mlsd:
                try:
                    return list(self._mlsd(folder))
                except ftplib.error_perm as exc:
                    if not str(exc).startswith(("500", "501", "502", "504")):
                        raise
                    log.info("server does not support MLSD (%s); listing with NLST, SIZE and MDTM", _reason(exc))
                    self.mlsd = False
            return list(self._nlst(folder))
        except self.ERRORS as exc:
            raise TransferError(f"cannot list {folder}: {_reason(exc)}") from exc

    def _mlsd(self, folder):
        for name, facts in self.ftp.mlsd(folder, ["type", "size", "modify"]):
            kind = facts.get("type", "").lower()
            if name in (".", "..") or kind not in ("file", "dir"):
                continue
            path = posixpath.join(folder, name)
            yield path, kind, int(facts.get("size") or 0), _ftp_time(facts.get("modify"))

    def _nlst(self, folder):
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
            try:
                size = self.ftp.size(path)
            except ftplib.error_perm:  # not a regular file: a folder if we can enter it
                if self._is_dir(path):
                    yield path, "dir", 0, None
                continue
            yield path, "file", size, _ftp_time(self.ftp.voidcmd(f"MDTM {path}")[4:].strip())

    def _is_dir(self, path):
        try:
            self.ftp.cwd(path)
            self.ftp.cwd(self.home)
            return True
        except ftplib.error_perm:
            return False

    def fetch(self, path, offset=0):
        """The file's bytes from ``offset`` to its end, in chunks; TransferError if cut short."""
        conn, skip = self._retr(check_name(path), offset)
        client, finished = self.ftp, False
        try:
            with conn:
                while data := conn.recv(CHUNK):
                    if skip:  # a server without REST: read past what is already loaded
                        data, skip = data[skip:], max(0, skip - len(data))
                        if not data:
                            continue
                    yield data
            self.ftp.voidresp()  # 226 only when the server sent the whole file
            finished = True
        except self.ERRORS as exc:
            raise TransferError(f"download interrupted: {_reason(exc)}") from exc
        finally:
            # the control connection is out of step: start afresh next time.  This may run late,
            # when an abandoned generator is collected: close only the connection it used.
            if not finished and self.ftp is client:
                self.close()
            elif not finished:
                client.close()

    def _retr(self, path, offset):
        """(data connection, bytes to skip): REST when the server has it, else from byte 0."""
        try:
            self.ftp.voidcmd("TYPE I")  # listings switch to ASCII; REST and exact bytes need binary
            if offset and self.rest:
                try:
                    return self.ftp.transfercmd(f"RETR {path}", rest=offset), 0
                except ftplib.error_perm as exc:
                    if not str(exc).startswith(("500", "502", "504")):
                        raise
                    log.warning("server refuses REST (%s); files that grew are read again from the start",
                                _reason(exc))
                    self.rest = False
            return self.ftp.transfercmd(f"RETR {path}"), offset
        except self.ERRORS as exc:
            raise TransferError(f"cannot start download at byte {offset}: {_reason(exc)}") from exc

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

    def _remove(self, path):
        self.ftp.delete(path)

    def _rename(self, path, dest):
        self.ftp.rename(path, dest)

    def _exists(self, path):
        try:
            self.ftp.size(path)
            return True
        except ftplib.error_perm:
            return False

    def _makedirs(self, folder):
        parts = [p for p in folder.split("/") if p]
        for i in range(1, len(parts) + 1):
            current = "/" + "/".join(parts[:i])
            if not self._is_dir(current):
                self.ftp.mkd(current)


def _ftp_time(value):
    """MLSD/MDTM times are UTC: YYYYMMDDHHMMSS[.fff]."""
    if not value:
        return None
    try:
        return datetime.strptime(value[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None


class HostKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Accept a host key that is not in known_hosts only if it matches the pin (or insecure mode)."""

    def __init__(self, settings):
        self.pin, self.insecure = settings.sftp_host_key, settings.sftp_insecure_accept_any_host_key

    def missing_host_key(self, client, hostname, key):
        fingerprint = fingerprint_of(key)
        if self.pin and fingerprint.rstrip("=") == self.pin.rstrip("="):
            return
        if self.insecure and not self.pin:
            log.warning("SFTP_INSECURE_ACCEPT_ANY_HOST_KEY=true: accepting host key %s %s of %s unverified",
                        key.get_name(), fingerprint, hostname)
            return
        where = "does not match SFTP_HOST_KEY" if self.pin else "is not in SFTP_KNOWN_HOSTS and SFTP_HOST_KEY is unset"
        raise HostKeyRejected(f"host key {key.get_name()} {fingerprint} of {hostname} {where}")


KEY_TYPES = (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey)


def load_private_key(text, passphrase):
    """SFTP_PRIVATE_KEY (Ed25519, ECDSA or RSA; OpenSSH or PEM) as a paramiko key, None when unset.

    A key that cannot be used is a ConfigError (exit 2) before anything is sent: not a key of
    those types, encrypted without SFTP_PRIVATE_KEY_PASSPHRASE, or a passphrase that does not open it.
    """
    if not text:
        return None
    key = _parse_key(text, passphrase or None)
    if key is not None:
        return key
    if _is_encrypted(text):
        raise ConfigError("SFTP_PRIVATE_KEY_PASSPHRASE does not decrypt SFTP_PRIVATE_KEY" if passphrase
                          else "SFTP_PRIVATE_KEY is encrypted: set SFTP_PRIVATE_KEY_PASSPHRASE")
    raise ConfigError("SFTP_PRIVATE_KEY is not an Ed25519, ECDSA or RSA private key in OpenSSH or PEM form")


def _parse_key(text, passphrase):
    for kind in KEY_TYPES:
        try:
            return kind.from_private_key(StringIO(text), password=passphrase)
        except (paramiko.SSHException, ValueError):  # PasswordRequiredException too
            continue
    return None


def _is_encrypted(text):
    for kind in KEY_TYPES:
        try:
            kind.from_private_key(StringIO(text))
        except paramiko.PasswordRequiredException:
            return True
        except (paramiko.SSHException, ValueError):
            continue
    return False


def fingerprint_of(key):
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class SftpRemote(Remote):
    """paramiko's SFTP client; the host key is always verified unless explicitly told not to."""

    ERRORS = (OSError, EOFError, paramiko.SSHException)

    def __init__(self, ftp, common):
        super().__init__(ftp, common)
        self.client = self.sftp = None
        self.home = "/"

    def open(self):
        key = load_private_key(self.settings.sftp_private_key.value, self.settings.sftp_private_key_passphrase.value)
        self.client = with_retries(lambda: self._login(key), self.what, self.common, self.ERRORS,
                                   refused=self._refused)
        try:
            self.sftp = self.client.open_sftp()
            self.home = self.sftp.normalize(".")
        except (OSError, paramiko.SSHException) as exc:
            self.close()
            raise UnreachableError(f"{self.what}: cannot start SFTP: {_reason(exc)}") from exc
        return self

    def _login(self, key):
        s = self.settings
        client = paramiko.SSHClient()
        if s.sftp_known_hosts:
            client.load_host_keys(s.sftp_known_hosts)
        client.set_missing_host_key_policy(HostKeyPolicy(s))
        try:
            client.connect(s.host, s.port, username=s.user, password=s.password.value or None, pkey=key,
                           timeout=self.common.connect_timeout, banner_timeout=self.common.connect_timeout,
                           auth_timeout=self.common.connect_timeout, allow_agent=False, look_for_keys=False)
        except HostKeyRejected as exc:
            client.close()
            raise HostKeyRejected(f"refusing {self.what}: {exc}") from None
        except BaseException:
            client.close()
            raise
        return client

    def _refused(self, exc):
        """What no retry can fix, as a ConfigError (exit 2): a refused login, a host key that changed."""
        if isinstance(exc, paramiko.BadHostKeyException):
            return HostKeyRejected(
                f"refusing {self.what}: its host key changed: it shows {exc.key.get_name()} {fingerprint_of(exc.key)}, "
                f"SFTP_KNOWN_HOSTS has {exc.expected_key.get_name()} {fingerprint_of(exc.expected_key)} "
                "(if the server's key was replaced on purpose, update SFTP_KNOWN_HOSTS)")
        if isinstance(exc, paramiko.AuthenticationException):
            return ConfigError(f"{self.what} refused the login: {_reason(exc)}")
        return None

    def version(self):
        transport = self.client.get_transport()
        return transport.remote_version if transport else ""

    def close(self):
        if self.client is not None:
            self.client.close()
            self.client = self.sftp = None

    def list_dir(self, folder):
        try:
            return [self._entry(folder, a) for a in self.sftp.listdir_attr(folder) if a.filename not in (".", "..")]
        except self.ERRORS as exc:
            raise TransferError(f"cannot list {folder}: {_reason(exc)}") from exc

    def _entry(self, folder, attr):
        path = posixpath.join(folder, attr.filename)
        mode = attr.st_mode or 0
        if stat.S_ISLNK(mode):  # follow links to files, never to folders (no cycles)
            attr = self.sftp.stat(path)
            mode = attr.st_mode or 0
            kind = "file" if stat.S_ISREG(mode) else "other"
        else:
            kind = "file" if stat.S_ISREG(mode) else "dir" if stat.S_ISDIR(mode) else "other"
        mtime = datetime.fromtimestamp(attr.st_mtime, UTC) if attr.st_mtime is not None else None
        return path, kind, attr.st_size or 0, mtime

    def fetch(self, path, offset=0):
        try:
            with self.sftp.open(check_name(path), "rb") as handle:
                handle.seek(offset)
                handle.prefetch()
                while data := handle.read(CHUNK):
                    yield data
        except self.ERRORS as exc:
            raise TransferError(f"download interrupted: {_reason(exc)}") from exc

    def head(self, path, length):
        try:
            with self.sftp.open(check_name(path), "rb") as handle:
                return handle.read(length)
        except self.ERRORS as exc:
            raise TransferError(f"cannot read: {_reason(exc)}") from exc

    def _remove(self, path):
        self.sftp.remove(path)

    def _rename(self, path, dest):
        self.sftp.rename(path, dest)

    def _exists(self, path):
        try:
            self.sftp.stat(path)
            return True
        except FileNotFoundError:
            return False

    def _makedirs(self, folder):
        if folder in ("", "/") or self._exists(folder):
            return
        self._makedirs(posixpath.dirname(folder))
        self.sftp.mkdir(folder)
