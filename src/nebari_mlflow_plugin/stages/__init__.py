"""nebari's stages: the user-pod client stage (65), the MLflow stage (85) and the input schema
nebari validates (which injects into JupyterHub at validation).

Imports lifecycle/, render/, providers/ and config/ (tests/plugin/test_layout.py)."""
