"""Artifact transfers over plain HTTP, streamed both ways, and a server's peak memory
(tests/e2e/test_artifacts.py, benchmarks/artifact_transfer.py).

A client as MLflow's own sends them: PUT the file's bytes (Content-Length, never whole
in memory), GET the file back; with a credential header and the Host the client uses.
"""

from __future__ import annotations

import hashlib
import http.client
import os
from pathlib import Path

MiB = 1024 * 1024
PATTERN = bytes(range(256)) * 4096  # 1 MiB


def write_file(path: Path, size: int) -> str:
    """A file of `size` bytes (not all alike, so nothing compresses it); its sha256."""
    digest = hashlib.sha256()
    with path.open("wb") as out:
        written, block = 0, 0
        while written < size:
            chunk = (block.to_bytes(8, "big") + PATTERN)[: min(MiB, size - written)]
            out.write(chunk)
            digest.update(chunk)
            written += len(chunk)
            block += 1
    return digest.hexdigest()


def _connection(port: int) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", port, timeout=600)


def put(port: int, url: str, headers: dict[str, str], host: str, *,
        source: Path | None = None, size: int = 0) -> tuple[int, bytes]:  # fmt: skip
    """PUT `source` (or `size` bytes of PATTERN), streamed in 1 MiB pieces."""
    connection = _connection(port)
    try:
        connection.putrequest("PUT", url, skip_host=True)
        length = source.stat().st_size if source else size
        for key, value in {"Host": host, **headers, "Content-Length": str(length)}.items():
            connection.putheader(key, value)
        connection.endheaders()
        if source:
            with source.open("rb") as data:
                while chunk := data.read(MiB):
                    connection.send(chunk)
        else:
            sent = 0
            while sent < size:
                chunk = PATTERN[: min(MiB, size - sent)]
                connection.send(chunk)
                sent += len(chunk)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def get(port: int, url: str, headers: dict[str, str], host: str, *,
        keep: bool = True) -> tuple[int, bytes, int, str]:  # fmt: skip
    """(status, body (empty unless `keep`), bytes received, their sha256)."""
    connection = _connection(port)
    try:
        connection.request("GET", url, headers={"Host": host, **headers})
        response = connection.getresponse()
        digest, received, kept = hashlib.sha256(), 0, bytearray()
        while chunk := response.read(MiB):
            digest.update(chunk)
            received += len(chunk)
            if keep:
                kept.extend(chunk)
        return response.status, bytes(kept), received, digest.hexdigest()
    finally:
        connection.close()


def group_processes(pgid: int) -> list[int]:
    """The processes of a process group (a server's CLI, uvicorn and its workers)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    pids.append(int(entry.name))
            except (ProcessLookupError, PermissionError):
                continue
    return pids


def peak_rss_mib(pids: list[int]) -> dict[int, float]:
    """Each process's peak resident memory so far (VmHWM), MiB."""
    peaks = {}
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks[pid] = int(line.split()[1]) / 1024
        except FileNotFoundError:
            continue
    return peaks


def growth_mib(before: dict[int, float], after: dict[int, float]) -> float:
    """The largest growth of one process's peak memory between two readings."""
    return max((after[pid] - before.get(pid, 0.0) for pid in after), default=0.0)
