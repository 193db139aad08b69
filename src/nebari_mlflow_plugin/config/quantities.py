"""Kubernetes resource quantities as numbers: what the schema compares and sizing computes.

Apart from sizing.py so the schema can compare a request with its limit without
importing the sizing rules (which read the schema's types).
"""

from __future__ import annotations

import re

_UNITS = {"": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
          "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
          "m": 1e-3}  # fmt: skip


def quantity(text: str) -> float:
    """A Kubernetes quantity (schema.QUANTITY_PATTERN) as a number, e.g. '1Gi' -> 2**30."""
    number, suffix = re.fullmatch(r"([0-9.]+)(.*)", text).groups()
    if suffix.startswith("e"):
        return float(number) * 10 ** int(suffix[1:])
    return float(number) * _UNITS[suffix]
