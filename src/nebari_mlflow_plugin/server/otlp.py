"""Traces sent through OTLP carry who sent them, whatever their spans claim.

MLflow ingests OpenTelemetry spans at `<prefix>/v1/traces`, a FastAPI route outside
the Flask hooks `attribution` works in, and builds the trace from the spans alone:
no `mlflow.user` metadata, and a root-span attribute `mlflow.traceTag.<key>` becomes
the trace tag `<key>`, so a span could name anyone as `mlflow.user`.

`OtlpAttribution` runs innermost, after MLflow's permission middleware has
authenticated the caller, allowed the write (EDIT on the experiment of the
`x-mlflow-experiment-id` header) and left the caller's name in the request state:

- The body is read (at most `MAX_BODY` bytes, decompressed too: 413 above) and
  parsed as MLflow parses it. Every span attribute claiming the `mlflow.user` tag
  now names the caller; the body then goes on as protobuf, otherwise unchanged.
- Once MLflow has stored the spans (200), each trace of the request in that
  experiment without `mlflow.user` metadata gets the caller's, before the client
  hears back. An existing value stays: it names the trace's creator (MLflow's own
  client sends it with `start_trace`, which `attribution` stamps).

`user.id` (MLflow's `mlflow.trace.user`, the application's end user) stays as sent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import zlib
from collections.abc import Iterable
from typing import Any

from .attribution import USER_TAG

_logger = logging.getLogger(__name__)

OTLP_PATH = "/v1/traces"  # mlflow.tracing.utils.otlp.OTLP_TRACES_PATH
TAG_PREFIX = "mlflow.traceTag."  # SpanAttributeKey.TRACE_TAG_PREFIX
PROTOBUF, JSON = "application/x-protobuf", "application/json"
# As the OpenTelemetry Collector's OTLP receiver (`max_request_body_size`, 20 MiB);
# MLflow's own client sends a span or a trace per request.
MAX_BODY = 20 * 1024 * 1024
TOO_LARGE = (
    f"OTLP request body over {MAX_BODY // (1024 * 1024)} MiB (decompressed): "
    "export fewer spans per request (the BatchSpanProcessor's max_export_batch_size)."
)
NO_CALLER = "Permission denied: MLflow did not name the caller of this OTLP export."
INVALID = "Invalid OpenTelemetry format"  # MLflow's words for a body it cannot parse

Scope = dict[str, Any]


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Gone(Exception):
    """The client went away before sending the whole body."""


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return value.decode("latin-1")
    return None


async def _read(scope: Scope, receive: Any) -> bytes:
    declared = _header(scope, b"content-length")
    if declared and declared.strip().isdigit() and int(declared) > MAX_BODY:
        raise Refused(413, TOO_LARGE)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Gone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise Refused(413, TOO_LARGE)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _inflate_once(data: bytes, wbits: int) -> bytes:
    """`data` decompressed (every gzip member), never more than MAX_BODY bytes."""
    out = bytearray()
    while True:
        stream = zlib.decompressobj(wbits)
        out += stream.decompress(data, MAX_BODY + 1 - len(out))
        if len(out) > MAX_BODY:
            raise Refused(413, TOO_LARGE)
        if not stream.eof:
            raise zlib.error("truncated")
        data = stream.unused_data
        if wbits != 31 or not data:
            return bytes(out)


def inflate(body: bytes, encoding: str) -> bytes | None:
    """As MLflow's `decompress_otlp_body`, bounded; None for an encoding it refuses."""
    if not encoding:
        return body
    attempts = {"gzip": (31,), "deflate": (15, -15)}.get(encoding)  # deflate: zlib or raw
    if attempts is None:
        return None
    for wbits in attempts:
        try:
            return _inflate_once(body, wbits)
        except zlib.error:
            continue
    raise Refused(400, f"Failed to decompress {encoding} payload")


def parse(media_type: str, body: bytes) -> Any:
    """The ExportTraceServiceRequest MLflow's handler would parse from `body`."""
    # What MLflow's handler parses with (protobuf's JSON parser, OTel's message).
    from mlflow.server.otel_api import (
        ExportTraceServiceRequest,
        ParseJsonProto,
        _convert_otlp_json_ids_to_base64,
    )

    request = ExportTraceServiceRequest()
    try:
        if media_type == JSON:
            ParseJsonProto(
                _convert_otlp_json_ids_to_base64(body), request, ignore_unknown_fields=True
            )
        else:
            request.ParseFromString(body)
    except Exception as exc:  # MLflow refuses whatever it cannot parse: so do we
        raise Refused(400, INVALID) from exc
    return request


def _spans(request: Any) -> Iterable[Any]:
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            yield from scope_spans.spans


def _claims_user(key: str) -> bool:
    return key.startswith(TAG_PREFIX) and key[len(TAG_PREFIX) :].strip() == USER_TAG


def stamp(request: Any, name: str) -> bool:
    """Make every span's claim to the `mlflow.user` trace tag name `name`; whether any did."""
    changed = False
    for span in _spans(request):
        if not any(_claims_user(a.key) for a in span.attributes):
            continue
        kept = [a for a in span.attributes if not _claims_user(a.key)]
        del span.attributes[:]
        span.attributes.extend(kept)
        span.attributes.add(key=TAG_PREFIX + USER_TAG).value.string_value = name
        changed = True
    return changed


def trace_ids(request: Any) -> set[str]:
    """The MLflow ids of the request's traces (as MLflow derives them from OTel ids)."""
    from mlflow.tracing.utils import generate_mlflow_trace_id_from_otel_trace_id

    return {
        generate_mlflow_trace_id_from_otel_trace_id(int.from_bytes(span.trace_id, "big"))
        for span in _spans(request)
        if span.trace_id
    }


def record_sender(ids: set[str], experiment_id: str, name: str) -> None:
    """`mlflow.user` metadata = `name` on the traces of `ids` in the experiment that have
    none, their rows locked as MLflow's `log_spans` and `start_trace` lock them."""
    from mlflow.server import handlers
    from mlflow.store.tracking.dbmodels.models import SqlTraceInfo, SqlTraceMetadata

    if not ids or not experiment_id.strip().isdigit():
        return
    store = handlers._get_tracking_store()
    with store.ManagedSessionMaker(read_only=False) as session:
        locked = (
            session.query(SqlTraceInfo.request_id)
            .filter(SqlTraceInfo.request_id.in_(sorted(ids)))
            .filter(SqlTraceInfo.experiment_id == int(experiment_id))
            .order_by(SqlTraceInfo.request_id)
            .with_for_update()
        )
        found = [row.request_id for row in locked]
        if not found:
            return
        named = {
            row.request_id
            for row in session.query(SqlTraceMetadata.request_id).filter(
                SqlTraceMetadata.request_id.in_(found), SqlTraceMetadata.key == USER_TAG
            )
        }
        session.add_all(
            SqlTraceMetadata(request_id=trace_id, key=USER_TAG, value=name)
            for trace_id in found
            if trace_id not in named
        )


async def _answer(send: Any, status: int, message: str) -> None:
    body = json.dumps({"detail": message}).encode()
    headers = [(b"content-type", JSON.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _as_protobuf(scope: Scope, body: bytes) -> Scope:
    drop = {b"content-type", b"content-encoding", b"content-length"}
    headers = [(k, v) for k, v in scope.get("headers") or () if k.lower() not in drop]
    headers += [(b"content-type", PROTOBUF.encode()), (b"content-length", str(len(body)).encode())]
    return dict(scope, headers=headers)


def _replay(body: bytes, receive: Any) -> Any:
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class OtlpAttribution:
    """ASGI middleware for `<prefix>/v1/traces`, inside MLflow's permission middleware."""

    def __init__(self, app: Any, prefix: str = "") -> None:
        self.app = app
        self.path = prefix.rstrip("/") + OTLP_PATH

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if (scope["type"] != "http" or scope["method"] != "POST"
                or scope["path"].rstrip("/") != self.path):  # fmt: skip
            await self.app(scope, receive, send)
            return
        name = (scope.get("state") or {}).get("username")
        media_type = (_header(scope, b"content-type") or "").split(";")[0].strip()
        encoding = (_header(scope, b"content-encoding") or "").strip().lower()
        try:
            if not name:  # the permission middleware names every caller it lets through
                raise Refused(403, NO_CALLER)
            original = await _read(scope, receive)
            body = inflate(original, encoding) if media_type in (PROTOBUF, JSON) else None
            if body is None:  # a type or encoding MLflow refuses before reading a span (400)
                await self.app(scope, _replay(original, receive), send)
                return
            request = parse(media_type, body)
        except _Gone:
            return
        except Refused as refused:
            await _answer(send, refused.status, str(refused))
            return
        ids = trace_ids(request)
        if stamp(request, name):
            original = request.SerializeToString()
            scope = _as_protobuf(scope, original)
        del request, body
        experiment_id = _header(scope, b"x-mlflow-experiment-id") or ""

        async def send_recorded(message: dict) -> None:
            if message["type"] == "http.response.start" and message["status"] == 200:
                try:
                    await asyncio.to_thread(record_sender, ids, experiment_id, name)
                except Exception:  # the spans are stored; the trace lacks its sender
                    _logger.exception("nebari-mlflow: could not record who sent OTLP traces")
            await send(message)

        await self.app(scope, _replay(original, receive), send_recorded)


def install(app: Any, prefix: str) -> None:
    """Innermost in MLflow's FastAPI app: after its permission middleware (Starlette
    builds the stack on the first request, `user_middleware[0]` outermost)."""
    from starlette.middleware import Middleware

    app.user_middleware.append(Middleware(OtlpAttribution, prefix=prefix))
