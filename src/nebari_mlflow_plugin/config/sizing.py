"""Memory of the MLflow server container, sized from `mlflow.workers` by measurement.

`benchmarks/server_memory.py` runs the server as the chart renders it and sums
the PSS of its whole process tree (the `mlflow server` process, uvicorn and its
workers, MLflow's job consumers); a straight line through the figures for
1, 2, 4 and 8 workers gives a fixed part and a part per worker, for the tree
after a bounded load (steady state) and at the load's peak. The request is the
steady state with a margin, the limit the peak with headroom, so the pod is
scheduled where it fits and not OOM-killed when a request spike hits every
worker at once. Amounts the admin sets are used as they are.
"""

from __future__ import annotations

import math

from nebari_mlflow_plugin.config.quantities import quantity
from nebari_mlflow_plugin.config.schema import Resources

MIB = 1024 * 1024

# Measured with `benchmarks/server_memory.py --workers 1,2,4,8 --seconds 20 --clients 4`
# (MLflow 3.17.2 as the chart runs it: PostgreSQL backend, server jobs off), MiB of
# PSS; see docs/admin/configure.md#sizing.
STEADY_BASE_MIB = 214.0
STEADY_PER_WORKER_MIB = 185.0
PEAK_BASE_MIB = 214.0
PEAK_PER_WORKER_MIB = 185.0

# Request: steady state plus this margin (allocator growth, caches filling over days).
REQUEST_MARGIN = 0.15
# Limit: load peak times this headroom (requests much bigger than the benchmark's:
# searches over large experiments, artifact downloads through the proxy).
LIMIT_HEADROOM = 2.0
# Amounts are rounded up to a multiple of this.
ROUND_MIB = 64

# Without a cpu request the pod is BestEffort on CPU; this is the chart's long-standing
# default (not measured: set it with the workers you expect to keep busy).
DEFAULT_CPU_REQUEST = "250m"


def _mib(amount: float) -> str:
    return f"{math.ceil(amount / ROUND_MIB) * ROUND_MIB}Mi"


def memory_request(workers: int) -> str:
    return _mib((STEADY_BASE_MIB + STEADY_PER_WORKER_MIB * workers) * (1 + REQUEST_MARGIN))


def memory_limit(workers: int) -> str:
    return _mib((PEAK_BASE_MIB + PEAK_PER_WORKER_MIB * workers) * LIMIT_HEADROOM)


def server_resources(resources: Resources, workers: int) -> dict[str, dict[str, str]]:
    """The server container's `resources`: the admin's amounts, the rest sized for
    `workers`. A sized amount never contradicts an admin's one (request <= limit)."""
    requests = resources.requests.model_dump(exclude_none=True)
    limits = resources.limits.model_dump(exclude_none=True)
    for name, sized in (("cpu", DEFAULT_CPU_REQUEST), ("memory", memory_request(workers))):
        if name not in requests:
            limit = limits.get(name)
            fits = limit is None or quantity(sized) <= quantity(limit)
            requests[name] = sized if fits else limit
    if "memory" not in limits:
        limits["memory"] = max(memory_limit(workers), requests["memory"], key=quantity)
    return {"requests": requests, "limits": limits}
