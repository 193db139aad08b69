"""`nebari mlflow ...`: render, status, preflight, backup/restore and migrate.

The typer app is in app.py; nebari imports it only when it builds its CLI. The top group:
imports stages/, lifecycle/, render/, providers/ and config/ (tests/plugin/test_layout.py)."""
