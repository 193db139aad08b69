"""Workflow tokens: MLflow credentials that outlive the JupyterLab server.

A server's `JUPYTERHUB_API_TOKEN` is deleted by JupyterHub when the server stops
(Nebari stops idle servers after 30 minutes), so an Argo workflow or scheduled job
that copied it (`jupyterflow-override`) loses MLflow part-way. In JupyterLab, run

    python -m nebari_mlflow_plugin.notebook.tokens          # or mint_workflow_token()

It asks JupyterHub (POST /hub/api/users/<you>/tokens, with the server's own token) for
a token that is good for MLflow only (`access:services!service=MLflow`) and expires
after the lifetime the admin chose (`mlflow.auth.workflow_token_hours`), and keeps it
in a file of your home directory (mode 0600), which workflow steps and scheduled jobs
mount too. The package's auth provider (notebook/auth.py) sends that token while it is
valid, else the pod's own: nothing to pass to the workflow. `--print` also writes it
to stdout, for a job that takes it as MLFLOW_TRACKING_TOKEN.

The package keeps that file valid by itself (keeper.py: JupyterLab renews it, and a
workflow step makes one when there is none while the server runs): the
command is for a lifetime of your choosing (`--hours`), or where the admin chose
`mlflow.auth.workflow_tokens: manual`. The file names its user: a token of someone else
is never sent. Standard library only; what only minting needs is imported there, so
importing this module (auth.py's, with every `import mlflow` in a pod) costs little.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import NamedTuple

# Set in user pods by the plugin (render/injection.py).
SERVICE_ENV = "NEBARI_MLFLOW_HUB_SERVICE"
LIFETIME_ENV = "NEBARI_MLFLOW_WORKFLOW_TOKEN_SECONDS"
# Where the token is kept (default under $HOME, which workflow steps mount too).
FILE_ENV = "NEBARI_MLFLOW_TOKEN_FILE"
DEFAULT_LIFETIME = 36 * 3600
# A token this close to its expiry is no longer handed out.
MARGIN_SECONDS = 5


class TokenError(RuntimeError):
    """JupyterHub did not make the token; the message says why and what to do."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  # JupyterHub's HTTP status, None when it did not answer


def token_file() -> Path:
    configured = os.environ.get(FILE_ENV)
    if configured:
        return Path(configured)
    return Path.home() / ".config" / "nebari-mlflow" / "workflow-token.json"


def _service() -> str:
    return os.environ.get(SERVICE_ENV) or "MLflow"


def lifetime() -> int:
    """Seconds a workflow token lasts: the deployment's `mlflow.auth.workflow_token_hours`."""
    try:
        return int(os.environ.get(LIFETIME_ENV) or DEFAULT_LIFETIME)
    except ValueError:
        return DEFAULT_LIFETIME


def _post(url: str, token: str, body: dict) -> dict:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        with contextlib.suppress(ValueError, AttributeError):
            detail = json.loads(detail).get("message", detail)
        raise _explain(exc.code, detail) from None
    except OSError as exc:
        raise TokenError(f"JupyterHub did not answer at {url}: {exc}") from None


def _hub_forgot(api: str, token: str) -> bool:
    """True when JupyterHub refuses `token` even to say whose it is (403 on /user)."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"{api}/user", headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30):
            return False
    except urllib.error.HTTPError as exc:
        return exc.code in (401, 403)
    except OSError:
        return False


def _explain(status: int, detail: str) -> TokenError:
    scope = f"access:services!service={_service()}"
    if status == 400 and "not held" in detail:
        return TokenError(
            f"you do not hold the JupyterHub scope {scope!r} yet: log out of Nebari and in "
            "again (Nebari applies your roles at login); if it persists, ask an admin to "
            f"add you to one of mlflow.auth.hub_access_groups. ({detail})",
            status,
        )
    if status == 403:
        return TokenError(
            "this server's token may not make tokens (it lacks `tokens!user`): restart your "
            "server after the admin deployed the MLflow plugin, or make a token on "
            f"/hub/token with the scope {scope!r}. ({detail})",
            status,
        )
    return TokenError(f"JupyterHub refused to make the token ({status}): {detail}", status)


def mint_workflow_token(
    expires_in: int | None = None, note: str | None = None, save: bool = True
) -> str:
    """A new MLflow-only JupyterHub token of the pod's user, expiring after `expires_in`
    seconds (default: the deployment's `mlflow.auth.workflow_token_hours`); kept in
    `token_file()` unless `save` is false."""
    api = os.environ.get("JUPYTERHUB_API_URL", "").rstrip("/")
    user = os.environ.get("JUPYTERHUB_USER", "")
    token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
    if not (api and user and token):
        raise TokenError(
            "run this in a JupyterLab server of Nebari (JUPYTERHUB_API_URL, JUPYTERHUB_USER "
            "and JUPYTERHUB_API_TOKEN are not all set)"
        )
    seconds = int(expires_in if expires_in is not None else lifetime())
    body = {
        "scopes": [f"access:services!service={_service()}"],
        "expires_in": seconds,
        "note": note or "MLflow workflow token (nebari-mlflow-plugin)",
    }
    from urllib.parse import quote

    try:
        made = _post(f"{api}/users/{quote(user, safe='')}/tokens", token, body)
    except TokenError as exc:
        # JupyterHub answers a bare 403 to a token it does not know as well as to one
        # that may not make tokens: ask who the token is, to say which.
        if exc.status == 403 and _hub_forgot(api, token):
            raise TokenError(
                "JupyterHub no longer knows this process's token: the JupyterLab server it "
                "came from has stopped (JupyterHub deletes a server's token when it stops)",
                exc.status,
            ) from None
        raise
    if save:
        _save(Saved(made["token"], time.time() + seconds, user))
    return made["token"]


class Saved(NamedTuple):
    """What the token file holds; `user` is None in files written before it was recorded
    (always the home's owner's: only this package wrote them)."""

    token: str
    expires_at: float
    user: str | None = None


def parse(text: str) -> Saved:
    """The token file's content; ValueError if it is not one."""
    try:
        data = json.loads(text)
        user = data.get("user")
        return Saved(str(data["token"]), float(data["expires_at"]),
                     None if user is None else str(user))  # fmt: skip
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not a workflow token file: {exc!r}") from None


def _save(saved: Saved) -> None:
    """Atomically: a reader (a workflow step, another kernel) sees the old file or the new
    one, and concurrent writers (kernels of one user) each write a file of their own."""
    import tempfile

    path = token_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "w") as out:  # mkstemp: mode 0600
            json.dump(saved._asdict(), out)
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise


_read: tuple = (None, None)  # ((mtime, size), Saved) of the file last read


def saved_token() -> str | None:
    """The kept workflow token while it is valid and of this pod's user (re-read only
    when the file changes)."""
    global _read
    path = token_file()
    try:
        stat = path.stat()
    except OSError:
        return None
    signature = (stat.st_mtime_ns, stat.st_size)
    if _read[0] != signature:
        try:
            _read = (signature, parse(path.read_text()))
        except (OSError, ValueError):
            return None
    saved = _read[1]
    user = os.environ.get("JUPYTERHUB_USER")
    if saved.user is not None and user and saved.user != user:
        return None  # someone else's: never act as them
    return saved.token if saved.expires_at - MARGIN_SECONDS > time.time() else None


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m nebari_mlflow_plugin.notebook.tokens",
        description="Make an MLflow workflow token that outlives this JupyterLab server "
        "(the server keeps one by itself; this one lasts as long as you choose).",
    )
    parser.add_argument("--hours", type=float, help="lifetime (default: the deployment's)")
    parser.add_argument("--print", action="store_true", help="also print the token")
    args = parser.parse_args(argv)
    expires_in = int(args.hours * 3600) if args.hours else None
    try:
        token = mint_workflow_token(expires_in)
    except TokenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    hours = (expires_in or lifetime()) / 3600
    print(f"MLflow workflow token kept in {token_file()} (valid {hours:g} h); workflow steps "
          "and scheduled jobs of yours use it.", file=sys.stderr)  # fmt: skip
    if args.print:
        print(token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
