"""SFTP (paramiko): password or key login, and a host key that is always verified unless told not to.

Driver errors (socket, paramiko) leave as TransferError through ``translated``.  At login,
what retrying cannot fix -- a refused login, a host key that changed -- goes through the
``refused`` hook of ``with_retries``; a key that is unknown (HostKeyPolicy) or a private key
that cannot be used fail before any retry.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import posixpath
import stat
from datetime import UTC, datetime
from io import StringIO

import paramiko

from ...errors import ConfigError, HostKeyRejected, UnreachableError
from ...report import one_line
from ...retry import with_retries
from .base import CHUNK, Remote, RemoteFile, check_name, translator

log = logging.getLogger("datasync.ftp")
DRIVER_ERRORS = (OSError, EOFError, paramiko.SSHException)
translated = translator(DRIVER_ERRORS)
KEY_TYPES = (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey)


def fingerprint_of(key):
    """SHA256:... as ``ssh-keygen -lf`` prints it (and as SFTP_HOST_KEY takes it)."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class HostKeyPolicy(paramiko.MissingHostKeyPolicy):
    """A host key missing from SFTP_KNOWN_HOSTS passes only if it matches SFTP_HOST_KEY (or in insecure mode)."""

    def __init__(self, settings):
        self.pin, self.insecure = settings.sftp_host_key, settings.sftp_insecure_accept_any_host_key

    def missing_host_key(self, client, hostname, key):
        """paramiko asks about a key known_hosts does not have: accept it, or raise HostKeyRejected."""
        fingerprint = fingerprint_of(key)
        if self.pin and fingerprint.rstrip("=") == self.pin.rstrip("="):
            return
        if self.insecure and not self.pin:
            log.warning("SFTP_INSECURE_ACCEPT_ANY_HOST_KEY=true: accepting host key %s %s of %s unverified",
                        key.get_name(), fingerprint, hostname)
            return
        where = "does not match SFTP_HOST_KEY" if self.pin else "is not in SFTP_KNOWN_HOSTS and SFTP_HOST_KEY is unset"
        raise HostKeyRejected(f"host key {key.get_name()} {fingerprint} of {hostname} {where}")


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
    """The key of the first type that reads ``text``, or None."""
    for kind in KEY_TYPES:
        try:
            return kind.from_private_key(StringIO(text), password=passphrase)
        except (paramiko.SSHException, ValueError):  # PasswordRequiredException too
            continue
    return None


def _is_encrypted(text):
    """True when some key type recognises ``text`` but needs a passphrase for it."""
    for kind in KEY_TYPES:
        try:
            kind.from_private_key(StringIO(text))
        except paramiko.PasswordRequiredException:
            return True
        except (paramiko.SSHException, ValueError):
            continue
    return False


class SftpRemote(Remote):
    """paramiko's SSH client and its SFTP channel."""

    def __init__(self, ftp, common):
        super().__init__(ftp, common)
        self.client = self.sftp = None

    # ------------------------------------------------------------ session

    def open(self):
        """Log in (the private key checked first, then bounded retries) and start the SFTP channel."""
        key = load_private_key(self.settings.sftp_private_key.value, self.settings.sftp_private_key_passphrase.value)
        self.client = with_retries(lambda: self._login(key), self.what, self.common, DRIVER_ERRORS,
                                   refused=self._refused)
        try:
            self.sftp = self.client.open_sftp()
            self.home = self.sftp.normalize(".")
        except DRIVER_ERRORS as exc:
            self.close()
            raise UnreachableError(f"{self.what}: cannot start SFTP: {one_line(exc)}") from exc
        return self

    def _login(self, key):
        """One login attempt; the host key is checked against SFTP_KNOWN_HOSTS, then HostKeyPolicy."""
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
            return ConfigError(f"{self.what} refused the login: {one_line(exc)}")
        return None

    def version(self):
        transport = self.client.get_transport()
        return transport.remote_version if transport else ""

    def close(self):
        if self.client is not None:
            self.client.close()
            self.client = self.sftp = None

    abort = close  # closing the transport waits for nothing

    # ------------------------------------------------------------ listing and stat

    def list_dir(self, folder):
        with translated(f"cannot list {folder}"):
            return [self._entry(folder, a) for a in self.sftp.listdir_attr(folder) if a.filename not in (".", "..")]

    def _entry(self, folder, attr):
        """(path, kind, size, mtime) of one listing entry; a link counts as the file it points to."""
        path = posixpath.join(folder, attr.filename)
        mode = attr.st_mode or 0
        if stat.S_ISLNK(mode):  # follow links to files, never to folders (no cycles)
            attr = self.sftp.stat(path)
            mode = attr.st_mode or 0
            kind = "file" if stat.S_ISREG(mode) else "other"
        else:
            kind = "file" if stat.S_ISREG(mode) else "dir" if stat.S_ISDIR(mode) else "other"
        return path, kind, attr.st_size or 0, _mtime(attr)

    def stat(self, path):
        """The file as the server sees it now, or None when there is no such file."""
        with translated("cannot read its size and time"):
            try:
                attr = self.sftp.stat(check_name(path))
            except FileNotFoundError:
                return None
        return RemoteFile(path, attr.st_size or 0, _mtime(attr)) if stat.S_ISREG(attr.st_mode or 0) else None

    # ------------------------------------------------------------ reading

    def fetch(self, path, offset=0):
        with translated("download interrupted"), self.sftp.open(check_name(path), "rb") as handle:
            handle.seek(offset)
            handle.prefetch()
            while data := handle.read(CHUNK):
                yield data

    def head(self, path, length):
        with translated("cannot read"), self.sftp.open(check_name(path), "rb") as handle:
            return handle.read(length)

    # ------------------------------------------------------------ changing

    def delete(self, path):
        with translated("cannot delete"):
            self.sftp.remove(check_name(path))

    def rename(self, path, dest):
        with translated(f"cannot move to {dest}"):
            self.sftp.rename(check_name(path), check_name(dest))

    def makedirs(self, folder):
        with translated(f"cannot create {folder}"):
            self._makedirs(folder)

    def _makedirs(self, folder):
        if folder in ("", "/") or self._exists(folder):
            return
        self._makedirs(posixpath.dirname(folder))
        self.sftp.mkdir(folder)

    def _exists(self, path):
        try:
            self.sftp.stat(path)
            return True
        except FileNotFoundError:
            return False


def _mtime(attr):
    return datetime.fromtimestamp(attr.st_mtime, UTC) if attr.st_mtime is not None else None
