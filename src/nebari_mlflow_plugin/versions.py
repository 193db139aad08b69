"""Pinned versions of what the plugin deploys. One place, read by the schema,
the chart defaults check and the Makefile."""

MLFLOW_VERSION = "3.17.2"
# ghcr.io/mlflow/mlflow:v<version>-full carries the PostgreSQL, S3, GCS and Azure
# drivers (the plain tag carries none); `-full` exists from MLflow 3.9.0 on.
MLFLOW_IMAGE = "ghcr.io/mlflow/mlflow"
MLFLOW_IMAGE_TAG = f"v{MLFLOW_VERSION}-full"
POSTGRES_IMAGE = "postgres"
POSTGRES_IMAGE_TAG = "16.6"
# The PostgreSQL metrics exporter of the monitoring add-on (the Prometheus community's image).
POSTGRES_EXPORTER_IMAGE = "quay.io/prometheuscommunity/postgres-exporter"
POSTGRES_EXPORTER_IMAGE_TAG = "v0.20.1"
