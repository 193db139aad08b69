"""The mlflow: block as nebari reads it: schema, overrides, sizing, scheduling, routes, names,
the 2025.10 keys, and the outputs of Nebari's own stages this plugin reads.

Imports nothing of the other nebari-side groups (checked by tests/plugin/test_layout.py)."""
