"""A cloud that cannot be reached warns, never raises: the permission pre-flight runs
inside config validation, on every nebari command (destroy included).

The exceptions are produced by the real SDKs (requests, google-auth, azure-core)
failing to connect to a closed loopback port, then raised from the raw cloud calls,
and the whole config is validated through nebari's plugin manager."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pydantic
import pytest
import requests
from support import nebari as nb

from nebari_mlflow_plugin.providers import preflight


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    nb.patch_cloud_lookups(monkeypatch)
    monkeypatch.delenv(preflight.SKIP_ENV, raising=False)
    monkeypatch.setenv("ARM_SUBSCRIPTION_ID", "00000000-0000-0000-0000-000000000001")


def _closed_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/token"


def _raised(call) -> BaseException:
    try:
        call()
    except Exception as exc:
        return exc
    raise AssertionError("the call did not fail")


def requests_error() -> BaseException:
    return _raised(lambda: requests.post(_closed_url(), timeout=5))


def google_transport_error() -> BaseException:
    from google.auth.transport.requests import Request

    return _raised(lambda: Request()(_closed_url(), method="POST", timeout=5))


def google_refresh_error() -> BaseException:
    """An expired/revoked refresh token: the token endpoint answers invalid_grant."""
    from google.auth.transport.requests import Request
    from google.oauth2 import credentials

    class TokenEndpoint(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.dumps({"error": "invalid_grant", "error_description": "Bad Request"})
            self.send_response(400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args) -> None:
            pass

    with HTTPServer(("127.0.0.1", 0), TokenEndpoint) as server:
        threading.Thread(target=server.handle_request, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/token"
        creds = credentials.Credentials(None, refresh_token="r", token_uri=url,
                                        client_id="c", client_secret="s")  # fmt: skip
        return _raised(lambda: creds.refresh(Request()))


def azure_service_request_error() -> BaseException:
    from azure.core import PipelineClient
    from azure.core.rest import HttpRequest

    client = PipelineClient(base_url=_closed_url())
    return _raised(lambda: client.send_request(HttpRequest("GET", _closed_url())))


def http_error() -> BaseException:
    response = requests.Response()
    response.status_code, response.reason, response.url = 503, "Service Unavailable", _closed_url()
    return _raised(response.raise_for_status)


GCP_ERRORS = [google_transport_error, google_refresh_error, requests_error, http_error]
AZURE_ERRORS = [azure_service_request_error, requests_error, http_error]


def _raising(make):
    error = make()

    def call(*args):
        raise error

    return call, error


@pytest.mark.parametrize("make", GCP_ERRORS, ids=lambda f: f.__name__)
def test_gcp_unreachable_warns_in_validation(monkeypatch, make):
    call, error = _raising(make)
    assert not isinstance(error, ValueError)
    monkeypatch.setattr(preflight, "_gcp_test_permissions", call)
    with pytest.warns(UserWarning, match=rf"skipped the GCP permission .*{type(error).__name__}"):
        config = nb.validate(nb.config_dict("gcp", {}))
    assert config.mlflow.enabled


@pytest.mark.parametrize("make", AZURE_ERRORS, ids=lambda f: f.__name__)
def test_azure_unreachable_warns_in_validation(monkeypatch, make):
    call, error = _raising(make)
    assert not isinstance(error, ValueError)
    monkeypatch.setattr(preflight, "_azure_permissions", call)
    with pytest.warns(UserWarning, match=rf"skipped the Azure permission .*{type(error).__name__}"):
        config = nb.validate(nb.config_dict("azure", {}))
    assert config.mlflow.enabled


def test_a_missing_permission_still_fails_validation(monkeypatch):
    monkeypatch.setattr(preflight, "_gcp_test_permissions", lambda project, wanted: wanted[:1])
    with pytest.raises(pydantic.ValidationError, match=r"lacks iam\.serviceAccounts\.setIamPolicy"):
        nb.validate(nb.config_dict("gcp", {}))
