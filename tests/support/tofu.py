"""nebari's `opentofu.run_tofu_subprocess` as OpenTofu 1.8 behaves behind it, for
tests of the stage's own tofu steps (the real one downloads OpenTofu and calls the
cloud): stdout returned when captured, stderr printed by nebari with a `[tofu]: `
prefix, a failure raised as OpenTofuException."""

from __future__ import annotations

import json
import sys
import time

from _nebari.provider import opentofu


def imported(address: str, object_id: str) -> str:
    resource = address.rsplit(".", 2)[-2]
    return (
        f'{address}: Importing from ID "{object_id}"...\n'
        f"{address}: Import prepared!\n  Prepared {resource} for import\n"
        f"{address}: Refreshing state... [id={object_id}]\n\nImport successful!\n\n"
        "The resources that were imported are shown above. These resources are now in\n"
        "your OpenTofu state and will henceforth be managed by OpenTofu.\n\n"
    )


def not_found(address: str, object_id: str) -> str:
    return (
        "\nError: Cannot import non-existent remote object\n\n"
        f'While attempting to import an existing object to "{address}", the\n'
        "provider detected that no object exists with the given id. Only pre-existing\n"
        "objects can be imported; check that the id is correct and that it is\n"
        "associated with the provider's configured region or endpoint, or use\n"
        '"tofu apply" to create a new remote object for this resource.\n'
    )


def forbidden(address: str, object_id: str) -> str:
    return (
        f"\nError: reading S3 Bucket ({object_id}): operation error S3: HeadBucket, https "
        "response error StatusCode: 403, RequestID: 8Q2Z1VJ3T0XKQ4YB, HostID: "
        "Tm9wZQ==, api error Forbidden: Forbidden\n\n"
    )


NO_STATE = (
    "No state file was found!\n\nState management commands require a state file. Run "
    "this command\nin a directory where OpenTofu has been run or use the -state flag\n"
    "to point the command to a specific state location.\n"
)
INTERRUPTED = "\nInterrupt received.\nPlease wait for OpenTofu to exit or data loss may occur.\n"


class FakeTofu:
    """run_tofu_subprocess as OpenTofu 1.8 behaves behind it; `answers` maps an
    address to how its import goes ("ok", "missing", "denied", "hang")."""

    def __init__(self, state: list[str] | None, answers: dict[str, str], plan: dict | None = None):
        self.state, self.answers, self.calls = state, answers, []
        # What `tofu show -json` prints for the plan the guard makes (default: no change).
        self.plan = plan or {"format_version": "1.2", "resource_changes": []}

    @staticmethod
    def _fail(stderr: str):
        for line in stderr.splitlines(keepends=True):  # as nebari's process_streams prints
            sys.stderr.buffer.write(b"[tofu]: " + line.encode())
        sys.stderr.flush()
        raise opentofu.OpenTofuException("OpenTofu returned an error")

    def __call__(self, args, exit_on_error=True, **kwargs):
        self.calls.append(list(args))
        if args[:2] == ["state", "list"]:
            if self.state is None:
                self._fail(NO_STATE)
            return "".join(f"{a}\n" for a in self.state).encode()
        if args[:2] == ["state", "rm"]:
            self.state = [a for a in self.state or [] if a not in args[2:]]
            return b""
        if args[:2] == ["show", "-json"]:
            return json.dumps(self.plan).encode()
        if args[0] == "import":
            address, object_id = args[-2:]
            answer = self.answers.get(address, "missing")
            if answer == "ok":
                return imported(address, object_id).encode()
            if answer == "hang":
                time.sleep(kwargs["timeout"])  # nebari kills the process group here
                self._fail(INTERRUPTED)
            self._fail({"missing": not_found, "denied": forbidden}[answer](address, object_id))
        return b""
