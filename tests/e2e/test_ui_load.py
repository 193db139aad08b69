"""The UI arrives compressed through the route (Traefik's compress Middleware, nginx
configured from it: support/nginx.py), and the runs page loads in a real browser.

Measured: bytes on the wire and time to first paint, printed here; compared with an
uncompressed route in benchmarks/ui_load.py.
"""

from __future__ import annotations

import pytest
from support.browser import missing_browser_tools, self_signed
from support.nginx import Nginx
from support.page_load import runs_page_loads

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tls_route(deployment, tmp_path_factory):
    """The deployment's route as rendered, also with TLS on 127.0.0.1:443."""
    reason = missing_browser_tools()
    if reason:
        pytest.skip(reason)
    workdir = tmp_path_factory.mktemp("ui-load-nginx")
    route = deployment.nginx.route
    tls = self_signed(workdir / "tls", route.host)
    hub_port = deployment.hub.port if deployment.hub else None
    with Nginx(workdir, route, deployment.server_port, deployment.nginx.auth_port, tls=tls,
               hub_port=hub_port, domain=deployment.config.domain):  # fmt: skip
        yield f"https://{route.host}"


def test_the_runs_page_arrives_compressed(deployment, tls_route):
    experiment = deployment.api("experiments/create", {"name": "ui-load"}, user="alice")
    experiment_id = experiment["experiment_id"]
    deployment.api("runs/create", {"experiment_id": experiment_id}, user="alice")
    (load,) = runs_page_loads(deployment, tls_route, experiment_id, loads=1)
    print(f"runs page, empty cache: {load['transferBytes']:,} bytes on the wire for "
          f"{load['bodyBytes']:,} decoded; first paint {load['fcpMs']:.0f} ms, runs shown "
          f"{load['shownMs']} ms")  # fmt: skip
    big = [s for s in load["scripts"] if s["bodyBytes"] > 100_000]
    assert big, load["scripts"]  # the UI's bundles
    for script in big:
        assert script["encoding"] == "gzip", script
        assert script["transferBytes"] < script["bodyBytes"] / 2, script
    assert load["transferBytes"] < load["bodyBytes"] / 2
    assert load["fcpMs"] is not None and load["fcpMs"] > 0
