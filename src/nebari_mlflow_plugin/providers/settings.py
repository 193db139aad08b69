"""Per-provider sections of the `mlflow:` block (mlflow.aws, mlflow.gcp, mlflow.azure).

Kept beside the provider builders that read them; schema.py only mounts them.
"""

from __future__ import annotations

from nebari import schema


class AwsSettings(schema.Base):
    """Settings used only when provider is aws."""


class GcpSettings(schema.Base):
    """Settings used only when provider is gcp."""


class AzureSettings(schema.Base):
    """Settings used only when provider is azure."""
