"""Reading a prompt someone shared does not warn about a write the reader never asked for.

MLflow's client, loading a prompt while an experiment is active, appends that
experiment's id to the prompt's `_mlflow_experiment_ids` tag (so the experiment's
page lists the prompts it used) in a background thread, and logs "Failed to tag
prompt" when the server refuses: a READ holder of a shared prompt sees that warning
on every load. The server records that link for any caller who may read the prompt
and edit the experiment, and only that: the new value must keep every id already
there, and the ids it adds must be experiments the caller may EDIT. Anything else
goes to MLflow's own check (EDIT on the prompt).
"""

from __future__ import annotations

import json
from typing import Any

from flask import Response, make_response, request

from .sharing import EXPERIMENT, PROMPT, permission_of, request_param

EXPERIMENT_IDS_TAG = "_mlflow_experiment_ids"
_SET_TAG = "/mlflow/registered-models/set-tag"


def _ids(value: Any) -> list[str]:
    return [part.strip() for part in str(value or "").split(",") if part.strip()]


def link(username: str) -> Response | None:
    """The answer to a reader's experiment link on a prompt, or None (not one: MLflow
    decides)."""
    if request.method != "POST" or not request.path.endswith(_SET_TAG):
        return None
    if request_param(request, "key") != EXPERIMENT_IDS_TAG:
        return None
    from mlflow.entities.model_registry import RegisteredModelTag
    from mlflow.exceptions import MlflowException
    from mlflow.server import handlers

    name, value = request_param(request, "name"), request_param(request, "value")
    registry = handlers._get_model_registry_store()
    try:
        prompt = registry.get_registered_model(str(name))
    except MlflowException:
        return None
    if not prompt._is_prompt():
        return None
    mine = permission_of(username, PROMPT, prompt.name, prompt)
    if mine.can_update or not mine.can_read:
        return None
    before, after = _ids(prompt.tags.get(EXPERIMENT_IDS_TAG)), _ids(value)
    added = [i for i in after if i not in before]
    if not set(before) <= set(after) or not added:
        return None
    if not all(permission_of(username, EXPERIMENT, i).can_update for i in added):
        return None
    tag = RegisteredModelTag(EXPERIMENT_IDS_TAG, f",{','.join(after)},")
    registry.set_registered_model_tag(prompt.name, tag)
    response = make_response(json.dumps({}), 200)
    response.mimetype = "application/json"
    return response
