"""Adopt the storage a previous deployment kept, before OpenTofu applies.

`nebari destroy` forgets (does not delete) the bucket and what belongs to it,
so the next deploy must import it or apply tries to create a bucket that exists.
nebari's own `state_imports` path imports with a 30 s time-out and swallows
every failure; a denied or timed-out import then surfaces later as a confusing
"bucket already exists". Here each import either adopts the object, finds that
none exists (fine: apply creates it), or stops the deploy naming the address,
the id and OpenTofu's message, before anything is applied.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
import time
from collections.abc import Iterator

from _nebari.provider import opentofu

IMPORT_TIMEOUT_SECONDS = 120
# What OpenTofu says when the id names no object: nothing was kept.
NOT_FOUND = "Cannot import non-existent remote object"
# `tofu state list` before the stage's state exists (exit code 1).
NO_STATE = "No state file was found!"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class AdoptionError(RuntimeError):
    """An import that neither adopted the object nor found it absent."""


class _Tee(io.RawIOBase):
    """Bytes written to a stream, also kept (nebari prints OpenTofu's stderr, it does
    not return it)."""

    def __init__(self, target):
        self.target, self.kept = target, io.BytesIO()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.kept.write(data)
        return self.target.write(data)

    def flush(self) -> None:
        self.target.flush()


@contextlib.contextmanager
def _stderr_kept() -> Iterator[io.BytesIO]:
    original = sys.stderr
    tee = _Tee(original.buffer)

    class Stderr:
        buffer = tee

        def write(self, text: str) -> int:
            tee.kept.write(text.encode())
            return original.write(text)

        def flush(self) -> None:
            original.flush()

    sys.stderr = Stderr()  # type: ignore[assignment]
    try:
        yield tee.kept
    finally:
        sys.stderr = original


def run_tofu(
    args: list[str], directory: str, timeout: float | None = None
) -> tuple[bool, str, str]:
    """(succeeded, stdout, stderr) of one OpenTofu command."""
    kwargs = {"timeout": timeout} if timeout else {}
    with _stderr_kept() as err:
        try:
            out = opentofu.run_tofu_subprocess(
                args, exit_on_error=False, cwd=directory, prefix="tofu", capture_output=True,
                **kwargs,
            )  # fmt: skip
            ok = True
        except opentofu.OpenTofuException:
            out, ok = b"", False
    return ok, (out or b"").decode(errors="replace"), err.getvalue().decode(errors="replace")


def tofu_message(output: str) -> str:
    """OpenTofu's diagnostics on one line, from the first `Error:`."""
    text = ANSI.sub("", output)
    lines = [line.removeprefix("[tofu]: ").strip(" │╷╵") for line in text.splitlines()]
    errors = [i for i, line in enumerate(lines) if line.startswith("Error:")]
    kept = lines[errors[0] :] if errors else lines[-5:]
    return " ".join(line.strip() for line in kept if line.strip()) or "no output"


def state_addresses(directory: str) -> set[str]:
    ok, out, err = run_tofu(["state", "list"], directory)
    if not ok and NO_STATE in err:
        return set()  # the stage's first deploy
    if not ok:
        raise AdoptionError(f"`tofu state list` failed, nothing was applied: {tofu_message(err)}")
    return {line.strip() for line in ANSI.sub("", out).splitlines() if line.strip()}


def adopt(
    directory: str, var_file: str, imports: list[tuple[str, str]], in_state: set[str] | None = None
) -> list[str]:
    """Import each (address, id) not yet in the state (`in_state`: its addresses, when
    the caller has listed them); return the addresses adopted."""
    if not imports:
        return []
    if in_state is None:
        in_state = state_addresses(directory)
    adopted = []
    for address, object_id in imports:
        if address in in_state:
            continue
        args = ["import", "-input=false", "-no-color", f"-var-file={var_file}", address, object_id]
        started = time.monotonic()
        ok, out, err = run_tofu(args, directory, timeout=IMPORT_TIMEOUT_SECONDS)
        output = out + err
        if ok:
            adopted.append(address)
        elif NOT_FOUND in output:
            continue  # nothing was kept under this id: apply creates it
        elif time.monotonic() - started >= IMPORT_TIMEOUT_SECONDS:
            raise AdoptionError(
                f"importing kept storage {address} (id {object_id}) timed out after "
                f"{IMPORT_TIMEOUT_SECONDS} s; nothing was applied. Is the cloud reachable? "
                f"OpenTofu said: {tofu_message(output)}"
            )
        else:
            raise AdoptionError(
                f"could not import kept storage {address} (id {object_id}); nothing was "
                f"applied, so OpenTofu will not try to create what may exist. OpenTofu said: "
                f"{tofu_message(output)}"
            )
    if adopted:
        print(f"Adopted MLflow data kept by a previous deployment: {', '.join(adopted)}")
    return adopted
