"""health.deployment_problems on Kubernetes API objects in the shape the API returns."""

from __future__ import annotations

import copy

import pytest

from nebari_mlflow_plugin.lifecycle import health

DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "mlflow", "namespace": "dev", "generation": 3},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app.kubernetes.io/instance": "mlflow"}},
    },
    "status": {
        "observedGeneration": 3,
        "replicas": 2,
        "updatedReplicas": 2,
        "readyReplicas": 2,
        "availableReplicas": 2,
    },
}


def pod(waiting_reason: str | None = None, scheduled: bool = True, init: bool = False) -> dict:
    state = {"waiting": {"reason": waiting_reason}} if waiting_reason else {"running": {}}
    status: dict = {
        "phase": "Pending" if waiting_reason or not scheduled else "Running",
        "conditions": [
            {
                "type": "PodScheduled",
                "status": "True" if scheduled else "False",
                **(
                    {}
                    if scheduled
                    else {"message": "0/3 nodes: pod has unbound immediate PersistentVolumeClaims"}
                ),
            }
        ],
    }
    key = "initContainerStatuses" if init else "containerStatuses"
    name = "migrate-database" if init else "mlflow"
    status[key] = [{"name": name, "ready": False, "state": state}]
    return {"metadata": {"name": "mlflow-7d9f-abcde", "namespace": "dev"}, "status": status}


def degraded(**status) -> dict:
    deployment = copy.deepcopy(DEPLOYMENT)
    deployment["status"].update(status)
    return deployment


def test_available_deployment_has_no_problems():
    assert health.deployment_problems(health.Snapshot(DEPLOYMENT, [pod()])) == []


def test_rollout_not_observed_yet_is_not_healthy():
    snapshot = health.Snapshot(degraded(observedGeneration=2), [pod()])
    assert health.deployment_problems(snapshot)


@pytest.mark.parametrize(
    ("reason", "advice"),
    [
        ("ImagePullBackOff", "mlflow.image"),
        ("ErrImagePull", "mlflow.image"),
        ("CrashLoopBackOff", "kubectl logs -n dev mlflow-7d9f-abcde -c mlflow --previous"),
        ("CreateContainerConfigError", "external_secret"),
    ],
)
def test_stuck_containers_get_actionable_advice(reason, advice):
    snapshot = health.Snapshot(degraded(availableReplicas=0), [pod(reason)])
    problems = health.deployment_problems(snapshot)
    assert len(problems) == 1
    assert reason in problems[0] and advice in problems[0]


def test_init_container_problems_are_reported():
    snapshot = health.Snapshot(degraded(availableReplicas=1), [pod("ImagePullBackOff", init=True)])
    assert "ImagePullBackOff" in health.deployment_problems(snapshot)[0]


def test_a_failing_migration_points_at_its_own_log():
    """The schema migration is the server pod's init container: its log, not the server's."""
    snapshot = health.Snapshot(degraded(availableReplicas=0), [pod("CrashLoopBackOff", init=True)])
    (problem,) = health.deployment_problems(snapshot)
    assert "-c migrate-database --previous" in problem


def test_unschedulable_pod_points_at_storage_class():
    snapshot = health.Snapshot(degraded(availableReplicas=0), [pod(scheduled=False)])
    problems = health.deployment_problems(snapshot)
    assert "cannot be scheduled" in problems[0]
    assert "storage_class" in problems[0]


def test_still_starting_is_reported_with_counts():
    snapshot = health.Snapshot(
        degraded(availableReplicas=1, updatedReplicas=2), [pod("ContainerCreating")]
    )
    (problem,) = health.deployment_problems(snapshot)
    assert "1/2 replicas available" in problem


def test_label_selector_from_dict_and_model():
    class Selector:
        match_labels = {"b": "2", "a": "1"}

    assert health.label_selector(Selector()) == "a=1,b=2"
    assert health.label_selector({"matchLabels": {"x": "y"}}) == "x=y"


def test_a_missing_secret_key_is_named_with_the_kubelet_message_and_the_hub_token_fix():
    """The kubelet's own message names the Secret and key; the advice covers the
    MLflow service's JupyterHub token, which JupyterHub's stage writes."""
    missing = pod("CreateContainerConfigError")
    missing["status"]["containerStatuses"][0]["state"]["waiting"]["message"] = (
        "couldn't find key hub.services.mlflow.apiToken in Secret dev/hub"
    )
    (problem,) = health.deployment_problems(
        health.Snapshot(degraded(availableReplicas=0), [missing])
    )
    assert "(couldn't find key hub.services.mlflow.apiToken in Secret dev/hub)" in problem
    assert "run `nebari deploy` again" in problem
