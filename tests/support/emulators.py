"""Cloud object-store emulators on loopback, and what the chart hands the server.

Each emulator runs as a subprocess on 127.0.0.1 and a free port, waits at most
`START_TIMEOUT` seconds to answer, and is stopped with its process group:
S3 on moto's server, GCS on gcp-storage-emulator (both from the MLflow
virtualenv), Azure Blob on Azurite (npm, installed under .tools/).

`provider_locals()` evaluates terraform/<provider>/locals.tf with a provider-free
Terraform run, the cloud resources replaced by stand-in values, so the chart gets
exactly the destination, annotations, labels and env Terraform would give it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nebari_mlflow_plugin.assets import terraform_dir
from support import terraform as tf

REPO = Path(__file__).resolve().parents[2]
MLFLOW_VENV = Path(os.environ.get("MLFLOW_VENV", REPO / ".venv-mlflow"))
AZURITE = Path(os.environ.get("AZURITE", REPO / ".tools/node_modules/.bin/azurite-blob"))
START_TIMEOUT = 60.0

# Azurite's fixed development account: public, documented test credentials.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


# The names Terraform would give the cloud resources (provider_locals' stand-ins).
BUCKET = "demo-dev-mlflow-0123abcd"
STANDINS = {
    "aws": {
        "aws_s3_bucket.artifacts": {"bucket": BUCKET},
        "aws_iam_role.mlflow": [{"arn": "arn:aws:iam::123456789012:role/demo-dev-mlflow"}],
    },
    "gcp": {
        "google_storage_bucket.artifacts": {"name": BUCKET},
        "google_service_account.mlflow": [{"email": "m@my-gcp-project.iam.gserviceaccount.com"}],
    },
    "azure": {
        "azurerm_storage_container.artifacts": {"name": "mlflow"},
        "azurerm_storage_account.artifacts": {"name": "demodevmlflow0123abcd"},
        "azurerm_user_assigned_identity.mlflow": {
            "client_id": "00000000-0000-0000-0000-0000000000a1"
        },
    },
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Emulator:
    """A store emulator process; `server_env` is what replaces cloud credentials."""

    name: str
    argv: list[str]
    port: int
    workdir: Path
    server_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Emulator:
        log = (self.workdir / f"{self.name}.log").open("ab")
        self.proc = subprocess.Popen(
            self.argv, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while not _listening(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = (self.workdir / f"{self.name}.log").read_text()[-2000:]
                raise RuntimeError(f"{self.name} did not start on {self.endpoint}: {tail}")
            time.sleep(0.2)
        return self

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def _has_module(module: str) -> bool:
    python = MLFLOW_VENV / "bin" / "python"
    if not python.exists():
        return False
    check = subprocess.run(
        [str(python), "-c", f"import {module}"], capture_output=True, timeout=60
    )  # fmt: skip
    return check.returncode == 0


def missing(provider: str) -> str | None:
    """Why the provider's emulator cannot run here, or None."""
    if not (MLFLOW_VENV / "bin" / "mlflow").exists():
        return f"MLflow virtualenv missing at {MLFLOW_VENV} (run `make install`)"
    needs = {
        "aws": ("moto.server", "moto[server]"),
        "gcp": ("gcp_storage_emulator", "gcp-storage-emulator"),
        "azure": ("azure.storage.blob", "azure-storage-blob"),
    }[provider]
    if not _has_module(needs[0]):
        return f"{needs[1]} not installed in {MLFLOW_VENV} (requirements/mlflow-env.txt)"
    if provider == "azure" and not AZURITE.exists():
        return f"Azurite not installed at {AZURITE} (npm install --prefix .tools azurite)"
    return None


@contextlib.contextmanager
def emulator(provider: str, workdir: Path) -> Iterator[Emulator]:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    bin_dir = MLFLOW_VENV / "bin"
    if provider == "aws":
        emu = Emulator(
            "moto", [str(bin_dir / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            port, workdir,
        )  # fmt: skip
        emu.server_env = {
            "MLFLOW_S3_ENDPOINT_URL": emu.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }
    elif provider == "gcp":
        emu = Emulator(
            "gcs",
            [str(bin_dir / "gcp-storage-emulator"), "start", "--host", "127.0.0.1",
             "--port", str(port), "--in-memory"],
            port, workdir,
        )  # fmt: skip
        emu.server_env = {"STORAGE_EMULATOR_HOST": emu.endpoint}
    else:
        data = workdir / "azurite"
        data.mkdir(exist_ok=True)
        emu = Emulator(
            "azurite",
            [str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(port),
             "--location", str(data), "--skipApiVersionCheck", "--loose"],
            port, workdir,
        )  # fmt: skip
        emu.server_env = {
            "AZURE_STORAGE_CONNECTION_STRING": (
                f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
                f"AccountKey={AZURITE_KEY};"
                f"BlobEndpoint={emu.endpoint}/{AZURITE_ACCOUNT};"
            )
        }
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


def provider_locals(
    provider: str, input_vars: dict[str, Any], standins: dict[str, Any], work: Path
) -> dict[str, Any]:
    """Evaluate terraform/<provider>/locals.tf, resources replaced by `standins`
    (address -> attributes as the cloud would report them), with Terraform itself."""

    work.mkdir(parents=True)
    text = (terraform_dir() / provider / "locals.tf").read_text()
    for address in standins:
        text = text.replace(address, f"local.standin_{address.replace('.', '_')}")
    (work / "locals.tf").write_text(text)
    lines = "\n".join(
        f"  standin_{a.replace('.', '_')} = jsondecode({json.dumps(json.dumps(v))})"
        for a, v in standins.items()
    )
    (work / "standins.tf").write_text(f"locals {{\n{lines}\n}}\n")
    shutil.copy(terraform_dir() / provider / f"{provider}-variables.tf", work / "variables.tf")
    shutil.copy(terraform_dir() / "cloud" / "cloud-variables.tf", work / "cloud-variables.tf")
    shutil.copy(terraform_dir() / "root" / "variables.tf", work / "root_variables.tf")
    names = ("artifacts_destination", "service_account_annotations", "pod_labels", "server_env")
    (work / "outputs.tf").write_text(
        "".join(f'output "{n}" {{\n  value = local.{n}\n}}\n' for n in names)
    )
    return tf.apply_outputs(work, input_vars)
