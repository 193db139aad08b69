"""A loopback Kubernetes API holding objects in memory: list (with an equality
label selector), get, replace (PUT) and delete of namespaced resources, for the real
kubernetes client. `deleted` and `replaced` record what was deleted or replaced, in
order (one list of events: `events`)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from support.http_answer import answer

PATH = re.compile(
    r"^/(?:api/v1|apis/[^/]+/[^/]+)/namespaces/(?P<ns>[^/]+)/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?$"
)


def _selected(obj: dict, selector: str) -> bool:
    labels = obj.get("metadata", {}).get("labels") or {}
    pairs = [term.split("=", 1) for term in selector.split(",") if term]
    return all(labels.get(key) == value for key, value in pairs)


class ObjectStore:
    def __init__(self, objects: dict[str, list[dict]]):
        """`objects`: plural (e.g. "secrets") -> objects (each with metadata.name)."""
        self.objects = {plural: {o["metadata"]["name"]: o for o in items}
                        for plural, items in objects.items()}  # fmt: skip
        self.deleted: list[str] = []
        self.replaced: list[str] = []
        self.events: list[str] = []
        store = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status: int, body: dict) -> None:
                answer(self, status, body, "application/json")

            def _route(self):
                url = urlsplit(self.path)
                match = PATH.match(unquote(url.path))
                return match, parse_qs(url.query)

            def do_GET(self) -> None:
                match, query = self._route()
                if not match:
                    return self._send(404, {"kind": "Status", "code": 404, "message": self.path})
                items = store.objects.get(match["plural"], {})
                if match["name"]:
                    found = items.get(match["name"])
                    return self._send(200 if found else 404, found or {"kind": "Status",
                                                                       "code": 404})  # fmt: skip
                selector = (query.get("labelSelector") or [""])[0]
                chosen = [o for o in items.values() if _selected(o, selector)]
                return self._send(200, {"kind": "List", "metadata": {}, "items": chosen})

            def do_DELETE(self) -> None:
                match, _ = self._route()
                found = store.objects.get(match["plural"], {}).pop(match["name"], None)
                if found is None:
                    return self._send(404, {"kind": "Status", "code": 404})
                store.deleted.append(f"{match['plural']}/{match['name']}")
                store.events.append(f"deleted {match['plural']}/{match['name']}")
                return self._send(200, {"kind": "Status", "status": "Success"})

            def do_PUT(self) -> None:
                match, _ = self._route()
                items = store.objects.get(match["plural"], {})
                if match["name"] not in items:
                    return self._send(404, {"kind": "Status", "code": 404})
                length = int(self.headers.get("Content-Length") or 0)
                items[match["name"]] = json.loads(self.rfile.read(length))
                store.replaced.append(f"{match['plural']}/{match['name']}")
                store.events.append(f"replaced {match['plural']}/{match['name']}")
                return self._send(200, items[match["name"]])

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@contextmanager
def serving(objects: dict[str, list[dict]]) -> Iterator[ObjectStore]:
    store = ObjectStore(objects)
    thread = threading.Thread(target=store.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield store
    finally:
        store.server.shutdown()
        store.server.server_close()
