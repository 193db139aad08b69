"""Cold loads of the MLflow UI's runs page in Chromium (e2e/browser/page_load.mjs):
time to first paint, to the runs shown, and the bytes on the wire vs decoded."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from support.browser import NODE_MODULES, chromium_binary
from support.signin import session_cookies

SCRIPT = Path(__file__).resolve().parents[1] / "e2e" / "browser" / "page_load.mjs"


def runs_page_loads(dep, origin: str, experiment_id: str, loads: int, user: str = "alice"):
    """`loads` loads, each with an empty cache, as `user`'s browser session."""
    host = origin.split("://", 1)[1].split(":")[0]
    plan = {
        "chromium": chromium_binary(), "nodeModules": str(NODE_MODULES), "origin": origin,
        "prefix": dep.config.mlflow.route_path, "experimentId": experiment_id,
        "cookies": session_cookies(dep, user, host),
        "loads": loads,
    }  # fmt: skip
    result = subprocess.run(
        ["node", str(SCRIPT)], input=json.dumps(plan), capture_output=True, text=True,
        timeout=120 + 60 * loads,
    )  # fmt: skip
    if result.returncode != 0:
        output = f"{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
        raise RuntimeError(f"page_load.mjs failed:\n{output}")
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
