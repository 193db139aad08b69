"""Request latency by kind of route, for alerts that mean what they say.

MLflow's own histogram (`mlflow_http_request_duration_seconds`) is labelled by method,
status and MLflow version only, so an artifact upload (the handler reads the whole
body) or a download from the object store (fetched before the response starts) counts
like a tracking call: one large model pages "MLflow is slow". This histogram adds
`route` (artifacts, api, ui) so the latency alert can leave artifact transfers out;
their failures still count in the 5xx ratio.

Measured as prometheus_flask_exporter measures MLflow's: from Flask's request_started
to request_finished (the gate's verification included, the response body's streaming
not). Connected through Flask's signals by `install()` (auth.py calls it at import), so
no app setup is touched. In `mlflow server --expose-prometheus` the workers share
PROMETHEUS_MULTIPROC_DIR, and /metrics exports this histogram beside MLflow's.
"""

from __future__ import annotations

import time
from typing import Any

from flask import g, request, request_finished, request_started

try:  # in the image beside prometheus-flask-exporter, which --expose-prometheus needs
    from prometheus_client import Histogram
except ImportError:  # pragma: no cover - an image without it has no /metrics either
    Histogram = None

METRIC = "mlflow_nebari_request_duration_seconds"
ARTIFACT_MARKERS = ("/mlflow-artifacts/", "/get-artifact")
API_MARKERS = ("/api/", "/ajax-api/", "/v1/traces", "/graphql")

DURATION = (
    Histogram(
        METRIC,
        "MLflow request duration in seconds by kind of route (artifacts, api, ui)",
        ("route", "method", "status"),
    )
    if Histogram is not None
    else None
)


def route_kind(path: str) -> str:
    """artifacts: transfers through the artifact proxy and artifact downloads; api:
    tracking, registry and trace calls; ui: everything else (pages, static files)."""
    if any(marker in path for marker in ARTIFACT_MARKERS):
        return "artifacts"
    if any(marker in path for marker in API_MARKERS):
        return "api"
    return "ui"


def _started(sender: Any, **extra: Any) -> None:
    g._nebari_request_started = time.perf_counter()


def _finished(sender: Any, response: Any, **extra: Any) -> None:
    started = g.pop("_nebari_request_started", None)
    if started is None:
        return
    DURATION.labels(route_kind(request.path), request.method, str(response.status_code)).observe(
        time.perf_counter() - started
    )


def install() -> None:
    """Measure every request of this process's Flask apps (idempotent: blinker keeps
    one connection per receiver)."""
    if DURATION is not None:  # weak=False: module-level functions, kept for the process's life
        request_started.connect(_started, weak=False)
        request_finished.connect(_finished, weak=False)
