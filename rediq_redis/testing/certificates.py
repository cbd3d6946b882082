"""Throwaway TLS certificates for tests, made with the ``openssl`` binary.

A CA, a server certificate for ``localhost`` / ``127.0.0.1`` and a client certificate,
all signed by that CA, in a temporary directory (removed by :meth:`Certificates.close`).
Nothing here is meant for production.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CertificatePair", "Certificates"]


@dataclass(frozen=True)
class CertificatePair:
    cert: Path
    key: Path


def _openssl(*args: str, cwd: Path) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        raise RuntimeError("openssl was not found on PATH: `apt-get install openssl`")
    done = subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])} failed: {done.stderr.strip()}")


class Certificates:
    """A CA and the certificates it signed; ``name`` tells apart several CAs."""

    def __init__(self, name: str = "rediq-test") -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="rediq-tls-"))
        self.ca = self._ca(name)
        self.server = self._signed(
            "server", "localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1"
        )
        self.client = self._signed("client", "rediq-client", "extendedKeyUsage=clientAuth")

    def _ca(self, name: str) -> CertificatePair:
        pair = CertificatePair(self.dir / "ca.crt", self.dir / "ca.key")
        # Key usage is required of a CA by strict verification (Python >= 3.13's default).
        _openssl(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN={name} CA",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            str(pair.key),
            "-out",
            str(pair.cert),
            cwd=self.dir,
        )
        return pair

    def _signed(self, stem: str, common_name: str, extension: str) -> CertificatePair:
        pair = CertificatePair(self.dir / f"{stem}.crt", self.dir / f"{stem}.key")
        request = self.dir / f"{stem}.csr"
        extfile = self.dir / f"{stem}.ext"
        extfile.write_text(
            "\n".join(
                [  # what strict verification expects of a leaf
                    extension,
                    "basicConstraints=CA:FALSE",
                    "subjectKeyIdentifier=hash",
                    "authorityKeyIdentifier=keyid,issuer",
                ]
            )
            + "\n"
        )
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={common_name}",
            "-keyout",
            str(pair.key),
            "-out",
            str(request),
            cwd=self.dir,
        )
        _openssl(
            "x509",
            "-req",
            "-in",
            str(request),
            "-CA",
            str(self.ca.cert),
            "-CAkey",
            str(self.ca.key),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            str(extfile),
            "-out",
            str(pair.cert),
            cwd=self.dir,
        )
        return pair

    def client_config(self) -> dict[str, str]:
        """``redis_config`` entries for a client that trusts this CA and presents the
        client certificate."""
        return {
            "ssl_ca_certs": str(self.ca.cert),
            "ssl_certfile": str(self.client.cert),
            "ssl_keyfile": str(self.client.key),
        }

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
