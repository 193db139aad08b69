"""server/otlp.py's reading of an OTLP body, against MLflow's own parsing and span
conversion: what it stamps, how it bounds decompression, which trace ids it names.
The middleware on the server as rendered: tests/e2e/test_permissions.py."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest
from mlflow.entities.span import Span

from nebari_mlflow_plugin.server import otlp

TRACE = "0af7651916cd43dd8448eb211c80319c"


def body(*spans: tuple[str, str | None, dict[str, str]]) -> bytes:
    """OTLP/JSON of (span id, parent id, attributes), one trace."""
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": TRACE, "spanId": span_id, "name": span_id,
         **({"parentSpanId": parent} if parent else {}),
         "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in attributes.items()]}
        for span_id, parent, attributes in spans
    ]}]}]}).encode()  # fmt: skip


def attributes(request) -> list[dict]:
    """Each span's attributes as MLflow stores them (JSON-encoded values)."""
    return [Span.from_otel_proto(span).to_dict()["attributes"] for span in otlp._spans(request)]


def test_every_claim_to_the_user_tag_names_the_caller_and_nothing_else_changes():
    request = otlp.parse(otlp.JSON, body(
        ("b7ad6b7169203331", None, {"mlflow.traceTag.mlflow.user ": "alice", "user.id": "alice",
                                    "mlflow.user": "alice", "mlflow.traceTag.team": "a"}),
        ("00f067aa0ba902b7", "b7ad6b7169203331", {"mlflow.traceTag.mlflow.user": "ada"}),
    ))  # fmt: skip
    assert otlp.stamp(request, "bob")
    again = otlp.parse(otlp.PROTOBUF, request.SerializeToString())
    root, child = attributes(again)
    assert root["mlflow.traceTag.mlflow.user"] == child["mlflow.traceTag.mlflow.user"] == '"bob"'
    assert "mlflow.traceTag.mlflow.user " not in root
    assert (root["user.id"], root["mlflow.user"], root["mlflow.traceTag.team"]) == (
        '"alice"', '"alice"', '"a"')  # fmt: skip
    assert otlp.trace_ids(again) == {Span.from_otel_proto(s).trace_id for s in otlp._spans(again)}
    assert otlp.trace_ids(again) == {f"tr-{TRACE}"}


def test_a_request_without_a_claim_is_left_as_sent():
    request = otlp.parse(otlp.JSON, body(("b7ad6b7169203331", None, {"user.id": "alice"})))
    assert not otlp.stamp(request, "bob")


def test_an_unparsable_body_is_refused_as_mlflow_refuses_it():
    for media_type, data in ((otlp.JSON, b"{not json"), (otlp.PROTOBUF, b"\xff\xff\xff")):
        with pytest.raises(otlp.Refused) as refused:
            otlp.parse(media_type, data)
        assert (refused.value.status, str(refused.value)) == (400, otlp.INVALID)


def test_decompression_reads_what_mlflow_reads_and_never_more_than_the_limit():
    data = body(("b7ad6b7169203331", None, {}))
    assert otlp.inflate(gzip.compress(data[:10]) + gzip.compress(data[10:]), "gzip") == data
    assert otlp.inflate(zlib.compress(data), "deflate") == data
    raw = zlib.compressobj(wbits=-15)
    assert otlp.inflate(raw.compress(data) + raw.flush(), "deflate") == data
    assert otlp.inflate(data, "") == data
    assert otlp.inflate(data, "br") is None  # MLflow refuses it: so does the request
    with pytest.raises(otlp.Refused) as refused:
        otlp.inflate(gzip.compress(b"\0" * (otlp.MAX_BODY + 1)), "gzip")
    assert refused.value.status == 413 and "over 20 MiB" in str(refused.value)
    with pytest.raises(otlp.Refused) as refused:
        otlp.inflate(gzip.compress(data)[:-12], "gzip")  # truncated
    assert refused.value.status == 400
