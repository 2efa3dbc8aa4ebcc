"""Real FTP, FTPS (pyftpdlib) and SFTP (paramiko's server) on loopback ports, serving a folder.

Each server runs in a thread of the test process; the service under test is a separate
process, as under cron.  ``drop_after`` cuts the connection mid-download, once.  ``hooks``
run test code inside the server, with the local path, just before it executes a command
(FTP: "RETR", "DELE", "RNFR", "MLST", "SIZE"; SFTP: "open", "remove", "rename", "stat") or
once it has sent a whole file ("sent"): a file can vanish or grow at a chosen moment, or a
command can be held until the test releases it.
"""

from __future__ import annotations

import datetime as dt
import io
import ipaddress
import os
import socket
import threading

import paramiko
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from paramiko import SFTPAttributes, SFTPHandle, SFTPServer, SFTPServerInterface
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import DTPHandler, FTPHandler, TLS_DTPHandler, TLS_FTPHandler
from pyftpdlib.servers import ThreadedFTPServer

USER = "plant"
PASSWORD = "s3cr3t pa$$ \"q' #%"


# ---------------------------------------------------------------- keys and certificates


def write_certificate(folder):
    """A self-signed certificate for 127.0.0.1 (SAN IP); returns (cert_path, key_path)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "server.crt", folder / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def openssh_key(kind="ed25519", passphrase=None):
    """(private key text in OpenSSH format, paramiko PKey) for ed25519, ecdsa or rsa."""
    key = {"ed25519": ed25519.Ed25519PrivateKey.generate, "ecdsa": lambda: ec.generate_private_key(ec.SECP256R1()),
           "rsa": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)}[kind]()
    encryption = (serialization.BestAvailableEncryption(passphrase.encode()) if passphrase
                  else serialization.NoEncryption())
    text = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, encryption).decode()
    loader = {"ed25519": paramiko.Ed25519Key, "ecdsa": paramiko.ECDSAKey, "rsa": paramiko.RSAKey}[kind]
    return text, loader.from_private_key(io.StringIO(text), password=passphrase)


# ---------------------------------------------------------------- FTP / FTPS


class DroppingDTP(DTPHandler):
    """Data channel that can cut the whole session after N bytes of a download (once)."""

    drop_after = None

    def send(self, data):
        limit = type(self).drop_after
        if limit is not None and self.cmd == "RETR" and self.tot_bytes_sent >= limit:
            type(self).drop_after = None
            self.cmd_channel.close()
            self.close()
            return 0
        return super().send(data[:4096] if limit is not None else data)


class FtpServer:
    """pyftpdlib over ``root``; ``tls`` for explicit FTPS, ``mlsd=False`` for an NLST-only server,
    ``rest=False`` for one that cannot resume."""

    def __init__(self, root, tls=False, mlsd=True, cert=None, perm="elradfmwMT", rest=True):
        authorizer = DummyAuthorizer()
        authorizer.add_user(USER, PASSWORD, str(root), perm=perm)
        base = TLS_FTPHandler if tls else FTPHandler
        attrs = {"authorizer": authorizer, "banner": "pyftpdlib test server ready",
                 "dtp_handler": type("DTP", (DroppingDTP, TLS_DTPHandler) if tls else (DroppingDTP,), {})}
        if tls:
            attrs.update(certfile=str(cert[0]), keyfile=str(cert[1]), tls_control_required=True,
                         tls_data_required=True)
        missing = ({"MLSD", "MLST"} if not mlsd else set()) | ({"REST"} if not rest else set())
        if missing:
            attrs["proto_cmds"] = {k: v for k, v in base.proto_cmds.items() if k not in missing}
        self.hooks = {}
        for command in ("RETR", "DELE", "RNFR", "MLST", "SIZE"):
            attrs[f"ftp_{command}"] = self._hooked(command, getattr(base, f"ftp_{command}"))
        attrs["on_file_sent"] = lambda handler, path: self.run_hook("sent", path)
        self.handler = type("Handler", (base,), attrs)
        self.server = ThreadedFTPServer(("127.0.0.1", 0), self.handler)
        self.host, self.port = self.server.address
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"timeout": 0.05}, daemon=True)
        self.thread.start()

    def run_hook(self, name, path):
        hook = self.hooks.get(name)
        if hook is not None:
            hook(path)

    def _hooked(self, name, command):
        def method(handler, path):
            self.run_hook(name, path)
            return command(handler, path)
        return method

    def set_perm(self, perm):
        self.handler.authorizer.user_table[USER]["perm"] = perm

    def drop_after(self, nbytes):
        self.handler.use_sendfile = False  # send() must see the bytes to cut them
        self.handler.dtp_handler.drop_after = nbytes

    def stop(self):
        self.server.close_all()
        self.thread.join(5)


# ---------------------------------------------------------------- SFTP


class _Handle(SFTPHandle):
    def stat(self):
        return SFTPAttributes.from_stat(os.fstat(self.readfile.fileno()))

    def close(self):
        super().close()
        if self.read_to_end:
            self.server.run_hook("sent", self.real_path)


def sftp_interface(root, server):
    """An SFTPServerInterface serving ``root`` (as paramiko's own test stub does)."""

    class Folder(SFTPServerInterface):
        def _real(self, path):
            return str(root) + self.canonicalize(path)

        def _wrap(call):  # noqa: N805 - a decorator inside the class body
            def wrapped(self, *args):
                try:
                    return call(self, *args)
                except OSError as exc:
                    return SFTPServer.convert_errno(exc.errno)
            return wrapped

        @_wrap
        def list_folder(self, path):
            real = self._real(path)
            out = []
            for name in os.listdir(real):
                attr = SFTPAttributes.from_stat(os.lstat(os.path.join(real, name)))
                attr.filename = name
                out.append(attr)
            return out

        @_wrap
        def stat(self, path):
            server.run_hook("stat", self._real(path))
            return SFTPAttributes.from_stat(os.stat(self._real(path)))

        @_wrap
        def lstat(self, path):
            return SFTPAttributes.from_stat(os.lstat(self._real(path)))

        @_wrap
        def open(self, path, flags, attr):
            server.run_hook("open", self._real(path))
            fd = os.open(self._real(path), flags, 0o644)
            mode = "rb" if not flags & (os.O_WRONLY | os.O_RDWR) else "r+b" if flags & os.O_RDWR else "wb"
            handle = _Handle(flags)
            handle.filename, handle.real_path, handle.server, handle.read_to_end = path, self._real(path), server, False
            handle.readfile = handle.writefile = os.fdopen(fd, mode)
            size, read = os.fstat(fd).st_size, handle.read

            def read_noting_the_end(offset, length):
                data = read(offset, length)
                handle.read_to_end = handle.read_to_end or (isinstance(data, bytes) and offset + len(data) >= size)
                return data
            handle.read = read_noting_the_end
            if server.drop_after is not None:
                limit, transport = server.drop_after, server.transports[-1]
                original = handle.read

                def read(offset, length):
                    if offset >= limit:
                        server.drop_after = None
                        transport.close()
                    return original(offset, length)
                handle.read = read
            return handle

        @_wrap
        def remove(self, path):
            server.run_hook("remove", self._real(path))
            os.remove(self._real(path))
            return paramiko.SFTP_OK

        @_wrap
        def rename(self, old, new):
            server.run_hook("rename", self._real(old))
            os.rename(self._real(old), self._real(new))
            return paramiko.SFTP_OK

        @_wrap
        def mkdir(self, path, attr):
            os.mkdir(self._real(path))
            return paramiko.SFTP_OK

    return Folder


class _Auth(paramiko.ServerInterface):
    def __init__(self, keys):
        self.keys = keys

    def check_auth_password(self, username, password):
        ok = username == USER and password == PASSWORD
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_auth_publickey(self, username, key):
        ok = username == USER and any(key.asbytes() == k.asbytes() for k in self.keys)
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def get_allowed_auths(self, username):
        return "password,publickey"

    def check_channel_request(self, kind, chanid):
        return paramiko.OPEN_SUCCEEDED if kind == "session" else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


class SftpServer:
    """paramiko's SSH server with the sftp subsystem over ``root``; password and public-key logins."""

    def __init__(self, root, host_key, client_keys=()):
        self.root, self.host_key, self.client_keys = root, host_key, list(client_keys)
        self.drop_after = None
        self.hooks = {}
        self.transports = []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.stopping = False
        self.host, self.port = self.sock.getsockname()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            transport = paramiko.Transport(conn)
            transport.add_server_key(self.host_key)
            transport.set_subsystem_handler("sftp", SFTPServer, sftp_interface(self.root, self))
            self.transports.append(transport)
            try:
                transport.start_server(server=_Auth(self.client_keys))
            except (paramiko.SSHException, EOFError, OSError):
                continue

    def run_hook(self, name, path):
        hook = self.hooks.get(name)
        if hook is not None:
            hook(path)

    def stop(self):
        self.stopping = True
        self.thread.join(5)
        self.sock.close()
        for transport in self.transports:
            transport.close()
