"""A real browser against the deployment: headless Debian Chromium driven by
playwright-core (npm, project-local in `.tools`, no browser download of its own).

The browser must reach the UI at exactly `https://<domain>` (port 443), as on a
real Nebari: MLflow accepts state-changing requests only from the origins the
chart lists. So nginx gets a TLS listener on 127.0.0.1:443 with a self-signed
certificate made here, and Chromium maps the domain to 127.0.0.1.
"""

from __future__ import annotations

import datetime
import errno
import json
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from support.deployment import REPO
from support.nginx import Tls

NODE_MODULES = REPO / ".tools" / "node_modules"
JOURNEY = REPO / "tests" / "e2e" / "browser" / "journey.mjs"


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def missing_browser_tools() -> str | None:
    """Why the browser journey cannot run here, or None."""
    if chromium_binary() is None:
        return "chromium not installed (scripts/system-deps.sh installs it)"
    if shutil.which("node") is None:
        return "Node.js not installed (scripts/system-deps.sh installs it)"
    if not (NODE_MODULES / "playwright-core" / "package.json").exists():
        return f"playwright-core missing under {NODE_MODULES} (run `make install`)"
    return port_443_unavailable()


def port_443_unavailable() -> str | None:
    """The browser's origin must be https://<domain> on 443: can we listen there?"""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", 443))
        except PermissionError:
            return "cannot listen on 127.0.0.1:443 (needs root or CAP_NET_BIND_SERVICE)"
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return "127.0.0.1:443 is in use"
            raise
    return None


def self_signed(directory: Path, host: str, *more_hosts: str) -> Tls:
    """A throwaway certificate for `host` and `more_hosts` (the browser is told to accept it)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(h) for h in (host, *more_hosts)]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    tls = Tls(cert=directory / "tls.crt", key=directory / "tls.key")
    tls.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    tls.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    tls.key.chmod(0o600)
    return tls


@dataclass
class JourneyResult:
    """What journey.mjs reported: one JSON object a line."""

    returncode: int
    events: list[dict] = field(default_factory=list)
    stderr: str = ""

    def steps(self) -> list[str]:
        return [e["step"] for e in self.events if e.get("event") == "step" and e.get("ok")]

    def failure(self) -> str | None:
        """A readable account of what went wrong, or None."""
        failed = [e for e in self.events if e.get("ok") is False]
        errors = [e for e in self.events if e.get("event") == "http-error" and not e["tolerated"]]
        if self.returncode == 0 and not failed and not errors:
            return None
        lines = [f"journey exited {self.returncode}; steps done: {self.steps()}"]
        for e in failed:
            lines.append(f"step {e['step']!r} failed at {e.get('url')}: {e.get('error')}")
            lines += [f"  still waiting for: {w}" for w in e.get("waiting", [])]
            lines.append(f"  the page showed: {e.get('page', '')!r}")
        lines += [
            f"request failed: {e['method']} {e['url']}: {e.get('failure')}"
            for e in self.events
            if e.get("event") == "request-failed"
        ]
        lines += [
            f"HTTP {e['status']} {e['method']} {e['url']}: {e.get('body', '')[:300]}"
            for e in errors
        ]
        if not self.events or self.returncode != 0:
            lines.append(self.stderr[-3000:])
        return "\n".join(lines)


def run_journey(plan: dict, *, timeout: float = 420) -> JourneyResult:
    """Run journey.mjs with `plan` (JSON on stdin) and collect its report."""
    result = subprocess.run(
        ["node", str(JOURNEY)],
        input=json.dumps({"chromium": chromium_binary(), "nodeModules": str(NODE_MODULES), **plan}),
        capture_output=True, text=True, timeout=timeout, cwd=REPO,
    )  # fmt: skip
    events = []
    for line in result.stdout.splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            events.append({"event": "output", "text": line})
    return JourneyResult(result.returncode, events, result.stderr)
