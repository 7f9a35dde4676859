"""Web config files (exporter-toolkit format) and the certificates they name, for the TLS and basic-auth tests
of the server, the exporter process and the webhook receiver.

    make_pki(folder)   a throwaway CA, server and client certificates (the `pki` fixture in tests/conftest.py)
    renew_server       a new server certificate and key from the same CA, written over the old pair
    write, basic       a config file in a folder; an Authorization header
    client_context     a client's TLS context trusting the test CA
    get                one request over a fresh connection: (status, body)
"""

from __future__ import annotations

import base64
import http.client
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

import bcrypt

PASSWORD = "s3cret-scrape"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()  # cost 4: fast tests, same code path

TLS_AND_AUTH = f"""
tls_server_config:
  cert_file: server.crt
  key_file: server.key
basic_auth_users:
  prometheus: {HASH}
"""


@dataclass(frozen=True)
class Pki:
    folder: Path
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path
    stranger_key: Path


def _openssl(folder: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=30)


def _signed(folder: Path, name: str, ca: str, usage: str, san: str = "") -> None:
    _openssl(folder, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
    ext = folder / f"{name}.ext"
    ext.write_text(f"basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                   f"extendedKeyUsage={usage}\n" + (f"subjectAltName={san}\n" if san else ""))
    _openssl(folder, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-days", "2", "-out", f"{name}.crt", "-extfile", ext.name)


def _ca(folder: Path, name: str) -> None:
    _openssl(folder, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2", "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")


def make_pki(folder: Path) -> Pki:
    """A CA with a server and a client certificate, and a client certificate from another CA, in `folder`
    (needs the openssl command)."""
    _ca(folder, "ca")
    _ca(folder, "other-ca")
    _signed(folder, "server", "ca", "serverAuth", "IP:127.0.0.1,DNS:localhost")
    _signed(folder, "client", "ca", "clientAuth")
    _signed(folder, "stranger", "other-ca", "clientAuth")
    f = folder
    return Pki(f, f / "ca.crt", f / "server.crt", f / "server.key", f / "client.crt", f / "client.key",
               f / "stranger.crt", f / "stranger.key")


def renew_server(pki: Pki) -> None:
    """A renewal as cert-manager or certbot does it: a new key and certificate from the same CA, written
    over `server.crt` and `server.key` in place (same names, new contents)."""
    _signed(pki.folder, "server", "ca", "serverAuth", "IP:127.0.0.1,DNS:localhost")


def write(folder: Path, text: str, name: str = "web.yml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def client_context(pki: Pki, *, cert: tuple[Path, Path] | None = None,
                   max_version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))
    if cert is not None:
        context.load_cert_chain(*cert)
    if max_version is not None:
        context.maximum_version = max_version
    return context


def get(port: int, *, context: ssl.SSLContext | None, headers: dict[str, str] | None = None,
        path: str = "/metrics") -> tuple[int, bytes]:
    connection: http.client.HTTPConnection
    if context is None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    else:
        connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=context)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()
