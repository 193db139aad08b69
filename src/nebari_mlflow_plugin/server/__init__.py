"""Code that runs inside the MLflow server container (mlflow + stdlib, Python 3.10+).

Delivered as files, never installed: the chart renders these modules into a
ConfigMap mounted as the top-level package `nebari_mlflow_server` on the
server's PYTHONPATH (see server_delivery.py), so every import inside the
package is relative and nothing here imports nebari or the plugin.
"""
