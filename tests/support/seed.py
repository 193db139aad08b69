"""The runs the migration, takeover and backup tests log and then expect back.

One script, run by the MLflow under test (the image's, or the public plugin's 3.3.2)
against a tracking URI: for each experiment in `experiments`, each of `runs` with its
params, tags, metric history (`loss`), a text artifact and, with `nested`, a JSON
artifact two folders deep; then model `model` with a version for each of the first
`versions` runs. Prints the run ids as JSON.
"""

from __future__ import annotations

SCRIPT = """
import json, sys
import mlflow
from mlflow import MlflowClient

data = json.loads(sys.argv[1])
run_ids = []
for experiment in data["experiments"]:
    mlflow.set_experiment(experiment)
    for run in data["runs"]:
        with mlflow.start_run(run_name=run["name"]) as active:
            mlflow.log_params(run["params"])
            mlflow.set_tags(run["tags"])
            for step, value in enumerate(run["loss"]):
                mlflow.log_metric("loss", value, step=step)
            mlflow.log_text(run["note"], "notes/note.txt")
            if data.get("nested"):
                mlflow.log_dict({"run": run["name"]}, "nested/deeper/info.json")
            run_ids.append(active.info.run_id)
client = MlflowClient()
client.create_registered_model(data["model"])
for run_id in run_ids[: data.get("versions", 1)]:
    source = client.get_run(run_id).info.artifact_uri + "/notes"
    client.create_model_version(data["model"], source, run_id)
print(json.dumps(run_ids))
"""
