"""A user's server as JupyterHub spawns it (run by support/jupyterhub.py's hub).

It does what every JupyterLab server does with the hub: it gets the server's own
`JUPYTERHUB_API_TOKEN` (kept in `server-token` of its home directory, which the test
reads as the pod's code would), and it is a hub OAuth client: a visitor's browser is
sent through JupyterHub's OAuth flow and hands it an OAuth token. `GET <prefix>visitor`
answers what the server then holds for its visitor: their name and token (what a
malicious server could replay elsewhere).
"""

from __future__ import annotations

import os
from pathlib import Path

from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
from jupyterhub.utils import url_path_join
from tornado import ioloop, web


class Visitor(HubOAuthenticated, web.RequestHandler):
    @web.authenticated
    def get(self) -> None:
        self.write({"name": self.current_user["name"], "token": self.hub_auth.get_token(self)})


def main() -> None:
    Path("server-token").write_text(os.environ["JUPYTERHUB_API_TOKEN"])
    prefix = os.environ["JUPYTERHUB_SERVICE_PREFIX"]
    app = web.Application(
        [
            (url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler),
            (url_path_join(prefix, "visitor"), Visitor),
            (prefix.rstrip("/") + "/?", Visitor),
        ],
        cookie_secret=os.urandom(32),
    )
    url = os.environ["JUPYTERHUB_SERVICE_URL"]
    host, port = url.split("://", 1)[1].rstrip("/").split("/")[0].rsplit(":", 1)
    app.listen(int(port), address=host)
    ioloop.IOLoop.current().start()


if __name__ == "__main__":
    main()
