"""mlflow.allowed_hosts_extra: a cluster whose pods live outside the private ranges
(EKS custom networking, 100.64.0.0/10) gets its scrapes and probes accepted by the
server's host check. The release is rendered as `nebari deploy` renders it, and the
Host header is judged by MLflow's own matcher (in the server's environment,
.venv-mlflow), with the rendered `--allowed-hosts`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pydantic
import pytest
from support import nebari as nb
from support.release import find, render_release

MLFLOW_PYTHON = Path(__file__).resolve().parents[2] / ".venv-mlflow" / "bin" / "python"
POD_100_64 = "100.64.3.7:5000"  # a pod IP of EKS custom networking, as Prometheus dials it
POD_10 = "10.42.0.17:5000"


def allowed_hosts(tmp_path, mlflow: dict) -> list[str]:
    config = nb.validate(nb.config_dict("local", mlflow))
    manifests = render_release(nb.stage_for(config, tmp_path), nb.STAGE_OUTPUTS)
    (server,) = [
        d for d in find(manifests, "Deployment")
        if d["metadata"]["labels"].get("app.kubernetes.io/component") == "server"
    ]  # fmt: skip
    (container,) = server["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    return args[args.index("--allowed-hosts") + 1].split(",")


def mlflow_accepts(allowed: list[str], hosts: list[str]) -> dict[str, bool]:
    """MLflow's verdict on each Host header (mlflow.server.security_utils)."""
    if not MLFLOW_PYTHON.exists():
        pytest.skip(".venv-mlflow is not installed (make install)")
    script = (
        "import json, sys\n"
        "from mlflow.server.security_utils import is_allowed_host_header\n"
        "allowed, hosts = json.load(sys.stdin)\n"
        "print(json.dumps({h: is_allowed_host_header(allowed, h) for h in hosts}))\n"
    )
    out = subprocess.run(
        [str(MLFLOW_PYTHON), "-c", script], input=json.dumps([allowed, hosts]),
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return json.loads(out.stdout)


def test_pods_outside_the_private_ranges_are_refused_by_default(tmp_path):
    verdict = mlflow_accepts(allowed_hosts(tmp_path, {}), [POD_10, POD_100_64])
    assert verdict == {POD_10: True, POD_100_64: False}


@pytest.mark.parametrize("extra", [["100.64.0.0/10"], ["100.64.*"]])
def test_allowed_hosts_extra_admits_the_named_pod_range_only(tmp_path, extra):
    hosts = [POD_100_64, "100.127.255.1:5000", "100.128.0.1:5000", "evil.example.org"]
    verdict = mlflow_accepts(allowed_hosts(tmp_path, {"allowed_hosts_extra": extra}), hosts)
    if extra == ["100.64.*"]:  # a pattern is taken as written
        assert verdict == {POD_100_64: True, "100.127.255.1:5000": False,
                           "100.128.0.1:5000": False, "evil.example.org": False}  # fmt: skip
    else:  # the CIDR is 100.64.0.0 - 100.127.255.255
        assert verdict == {POD_100_64: True, "100.127.255.1:5000": True,
                           "100.128.0.1:5000": False, "evil.example.org": False}  # fmt: skip


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("*", "would turn the host check off"),
        ("0.0.0.0/0", "too wide"),
        ("100.64.0.1/10", "not an IPv4 CIDR"),
        ("pods here", "neither an IPv4 CIDR"),
    ],
)
def test_bad_entries_are_refused_at_validate_naming_the_field(entry, says):
    with pytest.raises(pydantic.ValidationError) as err:
        nb.validate(nb.config_dict("local", {"allowed_hosts_extra": [entry]}))
    assert "mlflow.allowed_hosts_extra" in str(err.value) and says in str(err.value)
