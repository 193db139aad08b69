"""Nebari plugin that deploys MLflow (hooks in `plugin.py`; user-pod code in `notebook/`).

Importing the package must work without nebari: MLflow in a user pod imports
`nebari_mlflow_plugin.notebook` through its plugin entry points.
"""

from nebari_mlflow_plugin.__about__ import __version__

__all__ = ["__version__"]
