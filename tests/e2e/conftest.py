"""The rendered deployment, run for real on loopback: see support/deployment.py."""

from __future__ import annotations

import pytest
from support import nebari as nb
from support.deployment import missing_tools, running_deployment


@pytest.fixture(scope="session")
def deployment(tmp_path_factory):
    reason = missing_tools()
    if reason:
        pytest.skip(reason)
    config = nb.validate(nb.config_dict("local", {"workers": 2}))
    with running_deployment(tmp_path_factory.mktemp("e2e"), config) as running:
        yield running


@pytest.fixture(scope="session")
def seeded(deployment) -> list[str]:
    """support.backup_journey.SEED logged once into the session's deployment: the run ids.
    Session-wide because every module sharing the deployment sees the same database."""
    from support.backup_journey import seed

    return seed(deployment)
