"""Memory of the MLflow server as the chart runs it, per `--workers` count.

For each worker count, the release is rendered and run for real on loopback
(tests/support/deployment.py: rendered args and env, PostgreSQL, migrations),
then the whole process tree of the server container (the `mlflow server`
process, uvicorn's parent and its workers, anything they spawn) is measured
from /proc:

- PSS (`Pss` of /proc/<pid>/smaps_rollup, summed over the tree): each shared
  page is split between the processes mapping it, so the sum counts it once,
  as the container's memory cgroup does; RSS (summed) counts shared library
  pages once per process and is shown for comparison;
- idle: once the tree's memory stopped changing after start; load: peak while clients run log_batch,
  search_runs and artifact uploads through the artifact proxy; after: once the
  load stopped. PostgreSQL's tree (postmaster + backends) is measured the same way.

It prints a table and the least-squares fit `PSS = base + per_worker x workers`
of the load peaks, which is what src/nebari_mlflow_plugin/config/sizing.py is set from.

    .venv/bin/python benchmarks/server_memory.py [--workers 1,2,4,8] [--seconds 20]
        [--clients 4] [--json out.json]

Everything listens on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from support import nebari as nb  # noqa: E402
from support.deployment import MLFLOW_BIN, missing_tools, running_deployment  # noqa: E402
from support.load import collect, pod_env, start_clients  # noqa: E402

MIB = 1024 * 1024
SAMPLE_SECONDS = 0.5
# Idle is taken once the tree's PSS stays within STABLE_FRACTION over STABLE_SAMPLES
# one-second samples (MLflow's job consumers import for a while after the server
# answers), or after SETTLE_TIMEOUT seconds.
STABLE_FRACTION = 0.01
STABLE_SAMPLES = 5
SETTLE_TIMEOUT = 120.0

# Searches and 1 MiB artifact uploads (through --serve-artifacts) until time is up.
SEARCH_AND_UPLOAD = textwrap.dedent(
    """
    import os, sys, tempfile, time
    from mlflow import MlflowClient
    uri, seconds = sys.argv[1], float(sys.argv[2])
    client = MlflowClient(uri)
    experiment = client.create_experiment(f"memory-{time.time_ns()}")
    run_id = client.create_run(experiment).info.run_id
    path = os.path.join(tempfile.mkdtemp(), "blob.bin")
    with open(path, "wb") as f:
        f.write(os.urandom(1024 * 1024))
    deadline, i = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        client.search_runs([experiment], "metrics.m0 >= 0", max_results=100)
        client.log_artifact(run_id, path, artifact_path=f"upload-{i}")
        i += 1
    """
)


def children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name (field 2) may hold spaces; ppid follows its closing parenthesis.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def tree(root: int) -> list[int]:
    children, pids, todo = children_map(), [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(children.get(pid, []))
    return pids


def rollup_kib(pid: int) -> dict[str, int]:
    """Pss and Rss (KiB) of one process; empty if it exited meanwhile."""
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:
        return {}
    fields = {}
    for line in lines:
        name, _, rest = line.partition(":")
        if name in ("Pss", "Rss"):
            fields[name] = int(rest.split()[0])
    return fields


def kind(pid: int) -> str:
    """What a process of the server's tree is, from its command line."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "gone"
    if "huey_consumer" in cmdline or "_job_runner" in cmdline:
        return "jobs"  # MLflow's job execution (huey consumers), on by default
    if "spawn_main" in cmdline:
        return "workers"  # uvicorn workers (multiprocessing spawn)
    return "main"


@dataclass
class Sample:
    processes: int
    pss_mib: float
    rss_mib: float
    # PSS MiB and process count per kind().
    kinds: dict[str, tuple[float, int]]


def measure(root: int) -> Sample:
    rollups = {pid: r for pid in tree(root) if (r := rollup_kib(pid))}
    kinds: dict[str, tuple[float, int]] = {}
    for pid, r in rollups.items():
        pss, count = kinds.get(kind(pid), (0.0, 0))
        kinds[kind(pid)] = (pss + r["Pss"] / 1024, count + 1)
    return Sample(
        processes=len(rollups),
        pss_mib=sum(r["Pss"] for r in rollups.values()) / 1024,
        rss_mib=sum(r["Rss"] for r in rollups.values()) / 1024,
        kinds=kinds,
    )


class PeakSampler(threading.Thread):
    """Samples the trees every SAMPLE_SECONDS and keeps each one's largest PSS."""

    def __init__(self, roots: dict[str, int]):
        super().__init__(daemon=True)
        self.roots = roots
        self.peaks: dict[str, Sample] = {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            for name, root in self.roots.items():
                sample = measure(root)
                if name not in self.peaks or sample.pss_mib > self.peaks[name].pss_mib:
                    self.peaks[name] = sample
            self.done.wait(SAMPLE_SECONDS)

    def stop(self) -> dict[str, Sample]:
        self.done.set()
        self.join()
        return self.peaks


def settled(root: int) -> tuple[Sample, float]:
    """The tree once its memory stopped changing, and the seconds that took."""
    start, window = time.monotonic(), []
    while True:
        window = [*window, measure(root)][-STABLE_SAMPLES:]
        values = [s.pss_mib for s in window]
        elapsed = time.monotonic() - start
        steady = len(window) == STABLE_SAMPLES and max(values) - min(values) <= (
            STABLE_FRACTION * max(values)
        )
        if steady or elapsed > SETTLE_TIMEOUT:
            return window[-1], elapsed
        time.sleep(1)


def postmaster_pid(deployment) -> int:
    return int((deployment.postgres.data / "postmaster.pid").read_text().split()[0])


def run_one(workers: int, args, workdir: Path) -> dict:
    config = nb.validate(nb.config_dict("local", {"workers": workers}))
    with running_deployment(workdir / f"workers-{workers}", config) as deployment:
        roots = {"server": deployment.process.pid, "postgres": postmaster_pid(deployment)}
        idle_server, settle_seconds = settled(roots["server"])
        idle = {"server": idle_server, "postgres": measure(roots["postgres"])}
        # Clients as in alice's pod (her token, sent by the delivered package), synchronous.
        env = pod_env(deployment, workdir / f"workers-{workers}", async_logging=False)
        sampler = PeakSampler(roots)
        sampler.start()
        procs, outputs, _ = start_clients(
            deployment.service_url, env, clients=args.clients, seconds=args.seconds,
            batch=100, workdir=workdir,
        )  # fmt: skip
        other = subprocess.Popen(
            [str(MLFLOW_BIN / "python"), "-c", SEARCH_AND_UPLOAD, deployment.service_url,
             str(args.seconds)],
            env=env,
        )  # fmt: skip
        load = collect(procs, outputs, args.seconds, timeout=args.seconds + 300)
        other.wait(timeout=args.seconds + 300)
        peaks = sampler.stop()
        time.sleep(2)
        after = {name: measure(root) for name, root in roots.items()}
        # SIGKILL: a graceful stop of every worker can outlast the harness's wait on a
        # loaded machine, and nothing here needs one.
        deployment.stop_server(signal.SIGKILL)
        return {
            "workers": workers,
            "settle_seconds": settle_seconds,
            "idle": {k: asdict(v) for k, v in idle.items()},
            "peak": {k: asdict(v) for k, v in peaks.items()},
            "after": {k: asdict(v) for k, v in after.items()},
            "requests": load["requests"],
            "errors": load["errors"],
            "uploads_ok": other.returncode == 0,
        }


def fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least squares y = a + b x; (a, b)."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    b = sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0
    return my - b * mx, b


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2,4,8", help="comma-separated worker counts")
    parser.add_argument("--seconds", type=float, default=20, help="load duration per count")
    parser.add_argument("--clients", type=int, default=4, help="log_batch client processes")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    reason = missing_tools()
    if reason:
        sys.exit(reason)
    counts = [int(w) for w in args.workers.split(",")]
    results = []
    with tempfile.TemporaryDirectory(prefix="server-memory-") as tmp:
        for workers in counts:
            results.append(run_one(workers, args, Path(tmp)))
            print(f"measured workers={workers}: {json.dumps(results[-1])}", file=sys.stderr,
                  flush=True)  # fmt: skip
    print(f"load: {args.clients} log_batch clients + 1 search/upload client, {args.seconds:g} s; "
          f"cpus={os.cpu_count()}; MiB (PSS summed over the process tree)")  # fmt: skip
    header = ("workers", "processes", "settle s", "idle PSS", "idle RSS", "load PSS",
              "load RSS", "after PSS", "PostgreSQL idle", "PostgreSQL load", "requests",
              "errors")  # fmt: skip
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in results:
        s, p = "server", "postgres"
        row = (
            r["workers"], r["peak"][s]["processes"], r["settle_seconds"], r["idle"][s]["pss_mib"],
            r["idle"][s]["rss_mib"], r["peak"][s]["pss_mib"], r["peak"][s]["rss_mib"],
            r["after"][s]["pss_mib"], r["idle"][p]["pss_mib"], r["peak"][p]["pss_mib"],
            r["requests"], r["errors"],
        )  # fmt: skip
        cells = [f"{v:,.0f}" if isinstance(v, float) else str(v) for v in row]
        print("| " + " | ".join(cells) + " |")
    print("after-load PSS by process kind (MiB / processes):")
    for r in results:
        kinds = r["after"]["server"]["kinds"]
        parts = [f"{k} {pss:.0f}/{n}" for k, (pss, n) in sorted(kinds.items())]
        print(f"  workers={r['workers']}: " + ", ".join(parts))
    if len(results) > 1:
        for phase in ("idle", "after", "peak"):
            base, per_worker = fit([(r["workers"], r[phase]["server"]["pss_mib"]) for r in results])
            print(f"fit ({phase}): PSS = {base:.0f} MiB + {per_worker:.0f} MiB x workers")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    failed = [r["workers"] for r in results if r["errors"] or not r["uploads_ok"]]
    if failed:
        print(f"client errors at workers={failed}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
