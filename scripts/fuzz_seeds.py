#!/usr/bin/env python3
"""Writes the fuzz targets' seed inputs into fuzz/corpus/<target>/ from real material: the
shared event fixtures, DogStatsD lines as the Datadog libraries send them, Runtime API /next
headers, propagation headers as tracers write them, and v0.4/v0.5 payloads encoded with
msgpack (the library ddtrace uses). Seeds are named seed-*, so a re-run only refreshes them.

Usage: scripts/fuzz_seeds.py [events-dir]   (needs the msgpack module: <repo>/.venv has it)
"""
import glob
import hashlib
import json
import os
import sys

import msgpack

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
EVENTS = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/fixtures/events"


def write(target, data):
    if isinstance(data, str):
        data = data.encode()
    directory = os.path.join(CORPUS, target)
    os.makedirs(directory, exist_ok=True)
    name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


def lines(pairs):
    return "".join(f"{k}: {v}\n" for k, v in pairs)


XRAY = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
DATADOG = [
    ("x-datadog-trace-id", "4110911582297405557"),
    ("x-datadog-parent-id", "797643193680388254"),
    ("x-datadog-sampling-priority", "2"),
    ("x-datadog-origin", "rum"),
    ("x-datadog-tags", "_dd.p.tid=640cfd8d00000000,_dd.p.dm=-4"),
]
W3C = [
    ("traceparent", "00-640cfd8d00000000abcdefab12345678-000000003ade68b1-01"),
    ("tracestate", "dd=s:2;o:rum;p:0123456789abcdef;t.dm:-4;t.usr.id:baz64~~,othervendor=t61rcWkgMzE"),
]
B3_MULTI = [
    ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
    ("x-b3-spanid", "e457b5a2e4d86bd1"),
    ("x-b3-sampled", "1"),
    ("x-b3-flags", "1"),
]
B3_SINGLE = [("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90")]
BAGGAGE = [("baggage", "userId=alice,serverNode=DF%2028,isProduction=false;prop=1")]


def events():
    files = glob.glob(os.path.join(EVENTS, "*.json")) + glob.glob(os.path.join(EVENTS, "*", "*.json"))
    for path in sorted(files):
        with open(path, "rb") as f:
            write("event_json", f.read())
    # Events carrying each header style, in API Gateway shape.
    for headers in (DATADOG, W3C, B3_MULTI, B3_SINGLE, BAGGAGE, DATADOG + W3C):
        write("event_json", json.dumps({"httpMethod": "GET", "path": "/", "headers": dict(headers), "requestContext": {"stage": "prod"}}))


def dogstatsd():
    for line in [
        "page.views:1|c",
        "page.views:1|c|@0.5|#env:prod,team:a",
        "request.latency:12.5|d|#route:/x",
        "queue.size:42|g|T1700000000",
        "multi:1:2:3.5|d|#a:b",
        "histo:3|h",
        "timer:3|ms",
        "set:3|s",
        "with.container:1|c|c:abc|e:ext|card:high",
        "a:1|c\nb:2|g|#x\r\nc:3.0|d|T1699990000",
        "bad line",
        "name:nan|d",
        "name:1e308|c|@0.000001",
        "_sc|check|0",
        "_e{5,4}:title|text",
    ]:
        write("dogstatsd", line)
    write("dogstatsd", "many:1|d|#" + ",".join(f"t{i}:v" for i in range(101)))


def runtime_api_headers():
    base = [
        ("lambda-runtime-aws-request-id", "8476a536-e9f4-11e8-9739-2dfe598c3fcd"),
        ("lambda-runtime-deadline-ms", "1542409706888"),
        ("lambda-runtime-invoked-function-arn", "arn:aws:lambda:us-east-2:123456789012:function:custom-runtime"),
        ("lambda-runtime-trace-id", XRAY),
    ]
    client_context = json.dumps({"client": {"installation_id": "i", "app_title": "t"}, "custom": {"_datadog": dict(DATADOG)}, "env": {"platform": "ios"}})
    cognito = json.dumps({"cognitoIdentityId": "us-east-1:abc", "cognitoIdentityPoolId": "us-east-1:pool"})
    write("runtime_api_headers", lines(base))
    write("runtime_api_headers", lines(base + [("lambda-runtime-client-context", client_context), ("lambda-runtime-cognito-identity", cognito)]))
    write("runtime_api_headers", lines(base + [("lambda-runtime-aws-tenant-id", "tenant-1"), ("lambda-runtime-invocation-id", "inv-1")]))
    write("runtime_api_headers", lines(base[:1] + [("lambda-runtime-deadline-ms", "soon")]))
    write("runtime_api_headers", lines(base[:1] + [("lambda-runtime-client-context", "{not json")]))
    write("runtime_api_headers", lines([("content-type", "application/json")] + base[1:]))


def propagation():
    for headers in (DATADOG, W3C, B3_MULTI, B3_SINGLE, BAGGAGE, DATADOG + W3C, DATADOG + B3_MULTI + BAGGAGE):
        write("propagation", lines(headers))
    write("propagation", lines([("x-amzn-trace-id", XRAY)]))
    write("propagation", lines([("awstraceheader", "Root=1-00000000-00000000499602d2f1d9b1a7;Parent=35e1e2f6d87c9a11;Sampled=1")]))
    write("propagation", lines([("b3", "0")]))
    write("propagation", lines([("traceparent", "01-640cfd8d00000000abcdefab12345678-000000003ade68b1-01-extra")]))


def agent_bodies():
    span = {
        "trace_id": 4110911582297405557,
        "span_id": 12345,
        "parent_id": 797643193680388254,
        "name": "flask.request",
        "service": "svc",
        "resource": "GET /",
        "type": "web",
        "start": 1700000000000000000,
        "duration": 1500000,
        "error": 0,
        "meta": {"_dd.p.tid": "640cfd8d00000000", "http.method": "GET"},
        "metrics": {"_sampling_priority_v1": 1.0, "_dd.top_level": 1},
    }
    child = dict(span, span_id=23456, parent_id=12345, name="db.query", error=1, meta={"error.msg": "boom"})
    v04 = msgpack.packb([[span, child]])
    strings = ["", "svc", "flask.request", "GET /", "web", "_dd.p.tid", "640cfd8d00000000", "k", "v"]
    v05_span = [1, 2, 3, 4110911582297405557, 12345, 797643193680388254, 1700000000000000000, 1500000, 0, {5: 6, 7: 8}, {7: 1.5}, 4]
    v05 = msgpack.packb([strings, [[v05_span, v05_span]]])
    write("agent_bodies", b"\x00" + v04)
    write("agent_bodies", b"\x00" + msgpack.packb([]))
    write("agent_bodies", b"\x01" + v05)
    write("agent_bodies", b"\x01" + msgpack.packb([strings, []]))
    with open(os.path.join(EVENTS, "api-gateway.json"), "rb") as f:
        write("agent_bodies", b"\x02" + f.read())
    write("agent_bodies", b"\x02{}")
    error = [
        ("x-datadog-invocation-error", "true"),
        ("x-datadog-invocation-error-type", "ValueError"),
        ("x-datadog-invocation-error-msg", "bad input"),
        ("x-datadog-invocation-error-stack", "VHJhY2ViYWNrOgogIEZpbGUgImEucHkiCg=="),
    ]
    write("agent_bodies", b"\x03" + lines(error).encode())
    write("agent_bodies", b"\x03" + lines(error[:1] + [("x-datadog-invocation-error-stack", "plain\nstack")]).encode())


if __name__ == "__main__":
    events()
    dogstatsd()
    runtime_api_headers()
    propagation()
    agent_bodies()
    for target in sorted(os.listdir(CORPUS)):
        print(target, len(os.listdir(os.path.join(CORPUS, target))))
