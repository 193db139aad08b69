"""`mlflow.user` is the authenticated caller, whatever the client sent.

Rewrites the JSON body of every write that carries a user before MLflow's handler
reads it: Flask caches `request.get_json()`, and MLflow's handlers read the same
cached object (`get_json(force=True, silent=True)`), so editing it in place is what
the handler sees.

- Created with the caller as `mlflow.user` (added when the client sent none):
  runs (and their `user_id`), logged models, registered models and prompts, model
  and prompt versions, traces (their `mlflow.user` metadata, v3 and v2).
- A later tag write of `mlflow.user` (runs, logged models, registered models, model
  versions, traces; single and batch) gets the caller's name.
- Deleting `mlflow.user` is refused (`refusal`), except for admins.

A client in a Nebari pod would otherwise record the pod's OS user (`jovyan`).
Traces sent through OTLP (a FastAPI route, outside these Flask hooks): `otlp`.
"""

from __future__ import annotations

import re
from typing import Any

USER_TAG = "mlflow.user"

# (path pattern, method) -> how the body names the user: "create-list" (a list of
# {key, value} tags: add), "list" (overwrite when present), "key-value" (a single tag),
# "run" (runs/create: user_id too), "trace-v3", "trace-v2".
_WRITES: list[tuple[re.Pattern[str], str, str, str]] = [
    (re.compile(r".*/mlflow/runs/create"), "POST", "tags", "run"),
    (re.compile(r".*/mlflow/runs/set-tag"), "POST", "", "key-value"),
    (re.compile(r".*/mlflow/runs/log-batch"), "POST", "tags", "list"),
    (re.compile(r".*/mlflow/logged-models"), "POST", "tags", "create-list"),
    (re.compile(r".*/mlflow/logged-models/[^/]+/tags"), "PATCH", "tags", "list"),
    (re.compile(r".*/mlflow/registered-models/create"), "POST", "tags", "create-list"),
    (re.compile(r".*/mlflow/registered-models/set-tag"), "POST", "", "key-value"),
    (re.compile(r".*/mlflow/model-versions/create"), "POST", "tags", "create-list"),
    (re.compile(r".*/mlflow/model-versions/set-tag"), "POST", "", "key-value"),
    (re.compile(r".*api/3\.0/mlflow/traces"), "POST", "", "trace-v3"),
    (re.compile(r".*api/2\.0/mlflow/traces"), "POST", "request_metadata", "create-list"),
    (re.compile(r".*api/2\.0/mlflow/traces/[^/]+"), "PATCH", "request_metadata", "list"),
    (re.compile(r".*/mlflow/traces/[^/]+/tags"), "PATCH", "", "key-value"),
]
_DELETES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r".*/mlflow/runs/delete-tag"), "POST"),
    (re.compile(r".*/mlflow/registered-models/delete-tag"), "DELETE"),
    (re.compile(r".*/mlflow/model-versions/delete-tag"), "DELETE"),
    (re.compile(r".*/mlflow/traces/[^/]+/tags"), "DELETE"),
]
_DELETE_LOGGED_MODEL_TAG = re.compile(r".*/mlflow/logged-models/[^/]+/tags/(?P<key>[^/]+)")


def _body(request: Any) -> dict | None:
    body = request.get_json(force=True, silent=True)
    return body if isinstance(body, dict) else None


def _stamp_tags(tags: Any, name: str, add: bool) -> list:
    tags = [t for t in tags if isinstance(t, dict)] if isinstance(tags, list) else []
    found = False
    for tag in tags:
        if str(tag.get("key", "")).strip() == USER_TAG:
            tag["key"], tag["value"] = USER_TAG, name
            found = True
    if add and not found:
        tags.append({"key": USER_TAG, "value": name})
    return tags


def _stamp_map(mapping: Any, name: str, add: bool) -> Any:
    if not isinstance(mapping, dict):
        return {USER_TAG: name} if add else mapping
    for key in [k for k in mapping if str(k).strip() == USER_TAG]:
        del mapping[key]
        add = True
    if add:
        mapping[USER_TAG] = name
    return mapping


def stamp(request: Any, name: str) -> None:
    """Make the write in `request` (if it is one) record `name` as the user."""
    for pattern, method, field, shape in _WRITES:
        if request.method != method or not pattern.fullmatch(request.path):
            continue
        body = _body(request)
        if body is None:
            return
        if shape == "run":
            body["user_id"] = name
            body["tags"] = _stamp_tags(body.get("tags"), name, add=True)
        elif shape == "key-value":
            if str(body.get("key", "")).strip() == USER_TAG:
                body["key"], body["value"] = USER_TAG, name
        elif shape == "trace-v3":
            info = (body.get("trace") or {}).get("trace_info")
            if isinstance(info, dict):
                info["trace_metadata"] = _stamp_map(info.get("trace_metadata"), name, add=True)
                if isinstance(info.get("tags"), dict):
                    _stamp_map(info["tags"], name, add=False)
        elif shape == "create-list" or field in body:
            body[field] = _stamp_tags(body.get(field), name, add=shape == "create-list")
            if shape == "create-list" and field == "request_metadata":
                body["tags"] = _stamp_tags(body.get("tags"), name, add=False)
        return


def refusal(request: Any) -> str | None:
    """Why a (non-admin) request may not delete `mlflow.user`, or None."""
    key = None
    for pattern, method in _DELETES:
        if request.method == method and pattern.fullmatch(request.path):
            body = _body(request) or {}
            key = body.get("key", request.args.get("key"))
            break
    else:
        match = _DELETE_LOGGED_MODEL_TAG.fullmatch(request.path)
        if request.method == "DELETE" and match:
            key = match["key"]
    if isinstance(key, str) and key.strip() == USER_TAG:
        return f"Permission denied: {USER_TAG!r} names who made this; the server sets it."
    return None
