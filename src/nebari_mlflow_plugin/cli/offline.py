"""Validate a Nebari config without cloud calls, for offline previews.

nebari's config validators ask the cloud which regions, Kubernetes versions and
instance types exist. A preview must run with no credentials and no network,
so inside `offline_cloud_lookups()` those questions get answers that accept
whatever the config says; everything else validates as `nebari deploy` would.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class _AcceptsAnything(list):
    """A list of cloud offerings that contains whatever the config names."""

    def __contains__(self, item: object) -> bool:
        return True


class _PrefixOfAnything(str):
    def startswith(self, *args: Any) -> bool:  # type: ignore[override]
        return True


def _offerings(*placeholders: str):
    return lambda *args, **kwargs: _AcceptsAnything(placeholders)


_LOOKUPS = {
    "amazon_web_services": {
        "check_credentials": lambda *a, **k: None,
        "regions": _offerings("<region>"),
        "kubernetes_versions": _offerings("<latest>"),
        "zones": _offerings("<zone-a>", "<zone-b>"),
        "instances": _offerings(),
        "kms_key_arns": lambda *a, **k: {},
    },
    "google_cloud": {
        "check_credentials": lambda *a, **k: None,
        "regions": _offerings(),
        "kubernetes_versions": lambda *a, **k: _AcceptsAnything([_PrefixOfAnything("<latest>")]),
        "instances": _offerings(),
    },
    "azure_cloud": {
        "check_credentials": lambda *a, **k: None,
        "kubernetes_versions": _offerings("<latest>"),
    },
}


@contextlib.contextmanager
def offline_cloud_lookups() -> Iterator[None]:
    from _nebari.provider import cloud

    from nebari_mlflow_plugin.providers.preflight import SKIP_ENV

    saved: list[tuple[Any, str, Any]] = []
    skip_before = os.environ.get(SKIP_ENV)
    os.environ[SKIP_ENV] = "1"  # the plugin's own permission checks ask the cloud too
    try:
        for module_name, functions in _LOOKUPS.items():
            module = getattr(cloud, module_name)
            for name, stand_in in functions.items():
                saved.append((module, name, getattr(module, name)))
                setattr(module, name, stand_in)
        yield
    finally:
        for module, name, original in reversed(saved):
            setattr(module, name, original)
        if skip_before is None:
            os.environ.pop(SKIP_ENV, None)
        else:
            os.environ[SKIP_ENV] = skip_before


def read_config(path: Path, *, offline: bool = True) -> Any:
    """nebari's config class validated from a file (cloud look-ups stubbed when offline)."""
    from _nebari.config import read_configuration
    from nebari.plugins import nebari_plugin_manager

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist")
    schema = nebari_plugin_manager.config_schema
    if not offline:
        return read_configuration(path, schema)
    with offline_cloud_lookups():
        return read_configuration(path, schema)
