"""A loopback Kubernetes API server that keeps objects, for the commands that act.

k8s_api.py answers reads from recordings; this one plays the API server for Jobs,
CronJobs and a Deployment's scale: it holds the rendered CronJobs and Deployment (or
none: a deploy that failed half-way), other objects read by name (`objects`: the
database's claim and StatefulSet), stores the Jobs the real kubernetes client
creates, and hands each to a `Kubelet` the test supplies, which runs the Job's pod
for real (support/pods.py) and reports each container's exit code and log. Scaling
the Deployment is handed to the kubelet too (stop or start the local server). What
the client sees — Job status and conditions, pods with `job-name` labels, container
statuses, logs — is what the API server would show for that outcome.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from support.http_answer import answer as send_answer
from support.k8s_api import _status
from support.pods import Finished

NS = r"/namespaces/(?P<ns>[^/]+)"
CRONJOB = re.compile(rf"^/apis/batch/v1{NS}/cronjobs/(?P<name>[^/]+)$")
JOBS = re.compile(rf"^/apis/batch/v1{NS}/jobs$")
JOB = re.compile(rf"^/apis/batch/v1{NS}/jobs/(?P<name>[^/]+)$")
DEPLOYMENT = re.compile(rf"^/apis/apps/v1{NS}/deployments/(?P<name>[^/]+)$")
SCALE = re.compile(rf"^/apis/apps/v1{NS}/deployments/(?P<name>[^/]+)/scale$")
PODS = re.compile(rf"^/api/v1{NS}/pods$")
LOG = re.compile(rf"^/api/v1{NS}/pods/(?P<name>[^/]+)/log$")
OBJECT = re.compile(rf"^/(?:api/v1|apis/[^/]+/[^/]+){NS}/(?P<plural>[^/]+)/(?P<name>[^/]+)$")


class Kubelet(Protocol):
    def run_job(self, job: dict) -> list[Finished]: ...
    def scale(self, deployment: dict, replicas: int) -> None: ...


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class FakeCluster:
    namespace: str
    cronjobs: dict[str, dict]
    deployment: dict | None
    kubelet: Kubelet
    objects: dict[str, dict[str, dict]] = field(default_factory=dict)  # plural -> name -> obj
    jobs: dict[str, dict] = field(default_factory=dict)
    pods: dict[str, dict] = field(default_factory=dict)
    logs: dict[tuple[str, str], str] = field(default_factory=dict)
    scaled: list[int] = field(default_factory=list)  # every replicas value asked for
    threads: list[threading.Thread] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        if self.deployment is None:
            return
        self.deployment = copy.deepcopy(self.deployment)
        replicas = self.deployment["spec"].get("replicas", 1)
        self.deployment["status"] = {"replicas": replicas, "availableReplicas": replicas}
        self._server_pods(replicas)

    # --- what the kubelet and controllers do -------------------------------------------

    def _server_pods(self, replicas: int) -> None:
        template = self.deployment["spec"]["template"]
        for name in [n for n, p in self.pods.items() if p.get("_server")]:
            del self.pods[name]
        for i in range(replicas):
            name = f"{self.deployment['metadata']['name']}-{i}"
            self.pods[name] = {
                "metadata": {
                    "name": name,
                    "labels": template["metadata"]["labels"],
                    "creationTimestamp": _now(),
                },
                "spec": template["spec"],
                "_server": True,
            }

    def _run_job(self, name: str) -> None:
        job = self.jobs[name]
        template = job["spec"]["template"]
        pod_name = f"{name}-{uuid.uuid4().hex[:5]}"
        labels = {
            **(template.get("metadata") or {}).get("labels", {}),
            "job-name": name,
            "batch.kubernetes.io/job-name": name,
        }
        pod = {
            "metadata": {"name": pod_name, "labels": labels, "creationTimestamp": _now()},
            "spec": template["spec"],
            "status": {"phase": "Running"},
        }
        with self.lock:
            self.pods[pod_name] = pod
        try:
            finished = self.kubelet.run_job(job)
        except Exception as exc:  # a broken harness fails the Job, not waits forever
            finished = [Finished(template["spec"]["containers"][0]["name"], 1, repr(exc))]
        inits = {c["name"] for c in template["spec"].get("initContainers") or []}
        statuses: dict[str, list] = {"initContainerStatuses": [], "containerStatuses": []}
        for done in finished:
            self.logs[(pod_name, done.name)] = done.output
            key = "initContainerStatuses" if done.name in inits else "containerStatuses"
            statuses[key].append(
                {
                    "name": done.name,
                    "ready": False,
                    "restartCount": 0,
                    "image": "",
                    "imageID": "",
                    "state": {"terminated": {"exitCode": done.returncode}},
                }
            )
        ok = bool(finished) and all(f.returncode == 0 for f in finished)
        with self.lock:
            pod["status"] = {"phase": "Succeeded" if ok else "Failed", **statuses}
            condition = {
                "type": "Complete" if ok else "Failed",
                "status": "True",
                "reason": None if ok else "BackoffLimitExceeded",
            }
            job["status"] = {("succeeded" if ok else "failed"): 1, "conditions": [condition]}

    def _scale(self, replicas: int) -> None:
        self.kubelet.scale(self.deployment, replicas)
        with self.lock:
            self._server_pods(replicas)
            self.deployment["status"] = {"replicas": replicas, "availableReplicas": replicas}

    def _background(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self.threads.append(thread)
        thread.start()

    # --- the API ------------------------------------------------------------------------

    def answer(self, method: str, path: str, query: dict, body: dict | None):
        if (m := CRONJOB.match(path)) and method == "GET":
            found = self.cronjobs.get(m["name"])
            return (200, found) if found else (404, _status(404, f"cronjob {m['name']} not found"))
        if JOBS.match(path) and method == "POST":
            name = body["metadata"]["name"]
            if name in self.jobs:
                return 409, _status(409, f"job {name} already exists")
            job = {**body, "status": {}}
            job["metadata"] = {
                **body["metadata"],
                "uid": str(uuid.uuid4()),
                "creationTimestamp": _now(),
            }
            self.jobs[name] = job
            self._background(self._run_job, name)
            return 201, job
        if m := JOB.match(path):
            if m["name"] not in self.jobs:
                return 404, _status(404, f"job {m['name']} not found")
            if method == "DELETE":
                del self.jobs[m["name"]]
                for pod in [
                    n
                    for n, p in self.pods.items()
                    if p["metadata"]["labels"].get("job-name") == m["name"]
                ]:
                    del self.pods[pod]
                return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}
            return 200, self.jobs[m["name"]]
        if (m := DEPLOYMENT.match(path)) and method == "GET":
            if self.deployment is None or m["name"] != self.deployment["metadata"]["name"]:
                return 404, _status(404, f"deployment {m['name']} not found")
            return 200, self.deployment
        if (m := SCALE.match(path)) and method == "PATCH":
            replicas = body["spec"]["replicas"]
            self.scaled.append(replicas)
            self.deployment["spec"]["replicas"] = replicas
            self._background(self._scale, replicas)
            return 200, {
                "apiVersion": "autoscaling/v1",
                "kind": "Scale",
                "metadata": {"name": m["name"], "namespace": self.namespace},
                "spec": {"replicas": replicas},
                "status": {"replicas": replicas},
            }
        if PODS.match(path) and method == "GET":
            wanted = dict(
                p.split("=", 1) for p in query.get("labelSelector", [""])[0].split(",") if p
            )
            items = [
                {k: v for k, v in p.items() if not k.startswith("_")}
                for p in list(self.pods.values())
                if wanted.items() <= p["metadata"]["labels"].items()
            ]
            return 200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}
        if (m := LOG.match(path)) and method == "GET":
            text = self.logs.get((m["name"], query.get("container", [""])[0]))
            return (200, text) if text is not None else (404, _status(404, "no such container"))
        if (m := OBJECT.match(path)) and method == "GET" and m["plural"] in self.objects:
            found = self.objects[m["plural"]].get(m["name"])
            return (200, found) if found else (404, _status(404, f"{m['name']} not found"))
        return 404, _status(404, f"not served by the fake: {method} {path}")


@contextmanager
def serving(cluster: FakeCluster) -> Iterator[str]:
    """The API server on loopback; its URL. Waits for the kubelet's work on exit."""

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            with cluster.lock:
                status, answer = cluster.answer(
                    self.command, unquote(url.path), parse_qs(url.query), body
                )
            send_answer(self, status, answer)

        do_GET = do_POST = do_PATCH = do_DELETE = _handle

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        for worker in cluster.threads:
            worker.join(timeout=600)
        server.shutdown()
        server.server_close()
