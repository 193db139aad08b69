"""`mlflow.user` is the authenticated caller, whatever the client sent.

Rewrites the JSON body of the run writes that carry a user before MLflow's
handler reads it: Flask caches `request.get_json()`, and MLflow's handlers read
the same cached object (`get_json(force=True, silent=True)`), so editing it in
place is what the handler sees. Runs are created with `user_id` and the
`mlflow.user` tag set to the caller; set-tag and log-batch writing `mlflow.user`
get the caller's name.
"""

from __future__ import annotations

from typing import Any

USER_TAG = "mlflow.user"
_CREATE = "/mlflow/runs/create"
_SET_TAG = "/mlflow/runs/set-tag"
_LOG_BATCH = "/mlflow/runs/log-batch"


def _body(request: Any) -> dict | None:
    body = request.get_json(force=True, silent=True)
    return body if isinstance(body, dict) else None


def _stamp_tags(tags: Any, name: str, add: bool) -> list:
    tags = [t for t in tags if isinstance(t, dict)] if isinstance(tags, list) else []
    for tag in tags:
        if tag.get("key") == USER_TAG:
            tag["value"] = name
            return tags
    if add:
        tags.append({"key": USER_TAG, "value": name})
    return tags


def stamp(request: Any, name: str) -> None:
    """Make the run write in `request` (if it is one) record `name` as the user."""
    if request.method != "POST":
        return
    path = request.path
    if path.endswith(_CREATE):
        body = _body(request)
        if body is not None:
            body["user_id"] = name
            body["tags"] = _stamp_tags(body.get("tags"), name, add=True)
    elif path.endswith(_SET_TAG):
        body = _body(request)
        if body is not None and body.get("key") == USER_TAG:
            body["value"] = name
    elif path.endswith(_LOG_BATCH):
        body = _body(request)
        if body is not None and "tags" in body:
            body["tags"] = _stamp_tags(body.get("tags"), name, add=False)
