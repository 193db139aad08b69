"""server/authors.py: who is taken for the author of a run the public plugin logged
(no auth: the run says whatever the pod's process said)."""

from __future__ import annotations

import pytest

from nebari_mlflow_plugin.server.authors import _author

LAUNCHER = "/home/conda/analyst/envs/analyst-ml/lib/python3.12/site-packages/ipykernel_launcher.py"


@pytest.mark.parametrize(
    ("user_id", "user_tag", "source", "author"),
    [
        # A run logged with MLFLOW_TRACKING_USERNAME or an explicit user.
        ("alice@example.com", "jovyan", LAUNCHER, "alice@example.com"),
        # A pod's OS user names nobody; the mlflow.user tag may still.
        ("jovyan", "bob", "/home/jovyan/x.py", "bob"),
        # A script in the user's home (Nebari mounts it at /home/<name>).
        ("jovyan", None, "/home/carol@example.com/projects/train.py", "carol@example.com"),
        (" root ", "", "/home/dave/train.py", "dave"),
        # A notebook on 2025.10: the kernel's launcher in a conda-store environment.
        ("jovyan", "jovyan", LAUNCHER, ""),
        ("jovyan", None, "/home/Conda/x/envs/y/bin/train.py", ""),
        ("jovyan", None, "/home/shared/team/train.py", ""),
        ("jovyan", None, "/home/jovyan/train.py", ""),
        ("jovyan", None, "/opt/conda/bin/ipykernel_launcher.py", ""),
        ("", None, None, ""),
    ],
)
def test_the_author_is_a_user_never_an_environment(user_id, user_tag, source, author):
    assert _author(user_id, user_tag, source) == author
