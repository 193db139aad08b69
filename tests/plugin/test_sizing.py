"""The server container's memory follows `mlflow.workers`, from the measured figures.

Expectations are derived from the formula's inputs (the measured base and
per-worker MiB, the margin, the headroom, the rounding step), recomputed here,
and read back from the manifests Helm renders; admin amounts are used as given.
"""

from __future__ import annotations

import re

import pydantic
import pytest
import yaml
from support import nebari as nb
from support.release import find, render_release

from nebari_mlflow_plugin.assets import chart_dir
from nebari_mlflow_plugin.config import sizing

WORKERS = [1, 2, 4, 8, 16, 32]
BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def mib(amount: str) -> float:
    number, unit = re.fullmatch(r"([0-9.]+)(Ki|Mi|Gi|Ti)", amount).groups()
    return float(number) * BINARY[unit] / 2**20


def server_resources(mlflow: dict, tmp_path) -> dict:
    config = nb.validate(nb.config_dict("local", mlflow))
    manifests = render_release(nb.stage_for(config, tmp_path), nb.STAGE_OUTPUTS)
    (deployment,) = find(manifests, "Deployment", "mlflow")
    containers = deployment["spec"]["template"]["spec"]["containers"]
    (server,) = [c for c in containers if c["name"] == "mlflow"]
    return server["resources"]


def test_measured_figures_are_set():
    """The formula's inputs come from benchmarks/server_memory.py, not from zero."""
    for figure in (sizing.STEADY_BASE_MIB, sizing.STEADY_PER_WORKER_MIB,
                   sizing.PEAK_BASE_MIB, sizing.PEAK_PER_WORKER_MIB):  # fmt: skip
        assert figure > 0
    assert sizing.PEAK_PER_WORKER_MIB >= sizing.STEADY_PER_WORKER_MIB
    assert sizing.REQUEST_MARGIN >= 0 and sizing.LIMIT_HEADROOM >= 1


@pytest.mark.parametrize("workers", WORKERS)
def test_memory_follows_the_worker_count(workers, tmp_path):
    resources = server_resources({"workers": workers}, tmp_path)
    request, limit = mib(resources["requests"]["memory"]), mib(resources["limits"]["memory"])
    steady = sizing.STEADY_BASE_MIB + sizing.STEADY_PER_WORKER_MIB * workers
    peak = sizing.PEAK_BASE_MIB + sizing.PEAK_PER_WORKER_MIB * workers
    step = sizing.ROUND_MIB
    # Rounded up to the step, never below the measured figure with its margin.
    assert request % step == 0 and limit % step == 0
    wanted = steady * (1 + sizing.REQUEST_MARGIN)
    assert wanted <= request < wanted + step
    assert peak * sizing.LIMIT_HEADROOM <= limit < peak * sizing.LIMIT_HEADROOM + step
    assert limit >= request > steady
    assert resources["requests"]["cpu"] == sizing.DEFAULT_CPU_REQUEST


def test_more_workers_get_more_memory(tmp_path):
    requests = [mib(server_resources({"workers": w}, tmp_path)["requests"]["memory"])
                for w in (1, 8)]  # fmt: skip
    assert requests[1] - requests[0] >= 7 * sizing.STEADY_PER_WORKER_MIB


def test_admin_amounts_are_used_as_given(tmp_path):
    given = {"requests": {"cpu": "1", "memory": "3Gi"}, "limits": {"cpu": "2", "memory": "5Gi"}}
    assert server_resources({"workers": 8, "resources": given}, tmp_path) == given


def test_admin_limit_below_the_sized_request_caps_the_request(tmp_path):
    resources = server_resources(
        {"workers": 16, "resources": {"limits": {"memory": "1Gi"}}}, tmp_path
    )
    assert resources["limits"] == {"memory": "1Gi"}
    assert resources["requests"]["memory"] == "1Gi"


def test_admin_request_above_the_sized_limit_raises_the_limit(tmp_path):
    resources = server_resources({"workers": 1, "resources": {"requests": {"memory": "20Gi"}}},
                                 tmp_path)  # fmt: skip
    assert resources["requests"]["memory"] == "20Gi"
    assert mib(resources["limits"]["memory"]) == mib("20Gi")


def test_admin_cpu_keeps_memory_sized(tmp_path):
    sized = server_resources({"workers": 2}, tmp_path)
    resources = server_resources({"workers": 2, "resources": {"requests": {"cpu": "2"}}}, tmp_path)
    assert resources["requests"] == {**sized["requests"], "cpu": "2"}
    assert resources["limits"] == sized["limits"]


def test_chart_overrides_win_over_sizing(tmp_path):
    resources = server_resources(
        {"overrides": {"resources": {"limits": {"memory": "9Gi"}}}}, tmp_path
    )
    assert resources["limits"]["memory"] == "9Gi"


def test_request_above_limit_is_a_validation_error():
    block = {"resources": {"requests": {"memory": "4Gi"}, "limits": {"memory": "2Gi"}}}
    with pytest.raises(pydantic.ValidationError) as err:
        nb.validate(nb.config_dict(mlflow=block))
    assert "mlflow.resources.requests.memory" in str(err.value)
    assert "mlflow.resources.limits.memory" in str(err.value)


def test_chart_defaults_fit_its_default_workers():
    """`helm install` without the plugin gets the same sizing for the chart's own default."""
    defaults = yaml.safe_load((chart_dir() / "values.yaml").read_text())
    workers = defaults["server"]["workers"]
    assert defaults["resources"]["requests"]["memory"] == sizing.memory_request(workers)
    assert defaults["resources"]["limits"]["memory"] == sizing.memory_limit(workers)


def test_admin_cpu_limit_below_the_default_request_caps_it(tmp_path):
    resources = server_resources({"resources": {"limits": {"cpu": "100m"}}}, tmp_path)
    assert resources["requests"]["cpu"] == "100m"


# What `benchmarks/server_memory.py --workers 1,2,4,8 --seconds 20 --clients 4` measured
# (docs/admin/configure.md#sizing): PSS of the server's process tree after load and at
# the load's peak, MiB. Data from the machine, not from sizing.py: the sizing must cover it.
MEASURED = {1: (389, 389), 2: (590, 590), 4: (958, 957), 8: (1688, 1687)}


@pytest.mark.parametrize("workers", sorted(MEASURED))
def test_sized_memory_covers_what_the_server_was_measured_to_use(workers, tmp_path):
    after, peak = MEASURED[workers]
    resources = server_resources({"workers": workers}, tmp_path)
    assert mib(resources["requests"]["memory"]) >= after
    # Room above the measured peak for requests bigger than the benchmark's.
    assert mib(resources["limits"]["memory"]) >= 1.5 * peak
