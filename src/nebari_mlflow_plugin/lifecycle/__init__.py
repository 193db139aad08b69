"""What acts on a live deployment over time: adoption of existing resources, the deletion guard,
what survives disable and destroy, volumes after the first deploy, the takeover of
2025.10.x, and the cluster target with its status and health reads.

Imports render/, providers/ and config/, nothing above (tests/plugin/test_layout.py)."""
