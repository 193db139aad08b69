"""The runs page in a real browser through the route: compressed (the chart's compress
Middleware) vs not, side by side.

The server runs as the chart renders it, auth on (tests/support/deployment.py); nginx
stands in for Traefik on 127.0.0.1:443 (TLS, as browsers reach Nebari), configured
from the rendered IngressRoute and Middlewares, once as rendered and once without the
compress Middleware, taking turns. Each load is Chromium with an empty cache, signed
in (tests/e2e/browser/page_load.mjs). Prints medians of: bytes on the wire, decoded
bytes, first contentful paint, the runs shown.

    .venv/bin/python benchmarks/ui_load.py [--rounds 3] [--loads 3] [--json out.json]

Everything listens on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from support import nebari as nb  # noqa: E402
from support.browser import missing_browser_tools, port_443_unavailable, self_signed  # noqa: E402
from support.deployment import missing_tools, running_deployment  # noqa: E402
from support.nginx import Nginx  # noqa: E402
from support.page_load import runs_page_loads  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--loads", type=int, default=3, help="page loads per round and mode")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    reason = missing_tools() or missing_browser_tools() or port_443_unavailable()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 1
    loads: dict[str, list[dict]] = {"compressed": [], "uncompressed": []}
    with tempfile.TemporaryDirectory(prefix="ui-load-") as tmp:
        workdir = Path(tmp)
        config = nb.validate(nb.config_dict("local", {"prometheus": False}))
        with running_deployment(workdir / "chart", config) as dep:
            experiment_id = dep.api("experiments/create", {"name": "ui-load"}, user="alice")[
                "experiment_id"
            ]
            for i in range(5):
                dep.api("runs/create", {"experiment_id": experiment_id, "run_name": f"r{i}"},
                        user="alice")  # fmt: skip
            route = dep.nginx.route
            if route.compress is None:
                raise SystemExit("the rendered route has no compress Middleware")
            routes = {"compressed": route,
                      "uncompressed": dataclasses.replace(route, compress=None)}  # fmt: skip
            tls = self_signed(workdir / "tls", route.host)
            for round_ in range(args.rounds):
                for mode, mode_route in routes.items():
                    nginx_dir = workdir / f"nginx-{mode}-{round_}"
                    with Nginx(nginx_dir, mode_route, dep.server_port, dep.nginx.auth_port,
                               tls=tls, hub_port=dep.hub.port if dep.hub else None,
                               domain=dep.config.domain):  # fmt: skip
                        loads[mode] += runs_page_loads(
                            dep, f"https://{route.host}", experiment_id, args.loads
                        )
    print(f"rounds={args.rounds} loads={args.loads} (runs page, empty cache, through the route)")
    print(f"{'route':<13} {'on wire MB':>10} {'decoded MB':>10} {'first paint ms':>14} "
          f"{'runs shown ms':>13} {'main.js':>8}")  # fmt: skip
    summary = {}
    for mode, results in loads.items():
        figures = {
            "wire_mb": statistics.median(r["transferBytes"] for r in results) / 1e6,
            "decoded_mb": statistics.median(r["bodyBytes"] for r in results) / 1e6,
            "fcp_ms": statistics.median(r["fcpMs"] for r in results),
            "shown_ms": statistics.median(r["shownMs"] for r in results),
        }
        biggest = max(results[0]["scripts"], key=lambda s: s["bodyBytes"])
        print(f"{mode:<13} {figures['wire_mb']:>10.2f} {figures['decoded_mb']:>10.2f} "
              f"{figures['fcp_ms']:>14.0f} {figures['shown_ms']:>13.0f} "
              f"{biggest['encoding']:>8}")  # fmt: skip
        summary[mode] = figures
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "loads": loads}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
