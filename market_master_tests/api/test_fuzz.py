"""Schema fuzz: bodies and parameters generated from the app's OpenAPI schema (plus off-schema noise) for
every operation; no response may be a 5xx. hypothesis only (schemathesis is not installed)."""

from __future__ import annotations

import json

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from market_master_tests.api.conftest import ADMIN_TOKEN, window

JSON_SCALARS = st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats() | st.text(max_size=12)
ANY_JSON = st.recursive(
    JSON_SCALARS,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=12,
)
EDGE_NUMBERS = st.sampled_from([0.0, -1.0, 1e-300, 1e308, float("nan"), float("inf"), -0.0, 1.0]) | st.floats(
    0.01, 1e4
)


def _timestamps(api_env):
    stamps = pd.DatetimeIndex(api_env.bars["timestamp"].unique()).sort_values()[-60:]
    real = [t.isoformat() for t in stamps] + [t.tz_localize(None).isoformat() for t in stamps[-5:]]
    return st.sampled_from(real) | st.text(max_size=25) | st.datetimes().map(lambda d: d.isoformat())


def from_schema(schema: dict, spec: dict, api_env, depth: int = 0):
    """A hypothesis strategy for a (subset of) JSON Schema, biased to edge values."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return from_schema(spec["components"]["schemas"][name], spec, api_env, depth + 1)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return st.one_of([from_schema(s, spec, api_env, depth + 1) for s in schema[key]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"]) | st.text(max_size=4)
    if "const" in schema:
        return st.just(schema["const"]) | st.text(max_size=4)
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        fields = {
            name: from_schema(sub, spec, api_env, depth + 1) | (ANY_JSON if depth < 2 else st.none())
            for name, sub in props.items()
        }
        return st.fixed_dictionaries(
            {k: v for k, v in fields.items() if k in required},
            optional={k: v for k, v in fields.items() if k not in required},
        )
    if kind == "array":
        return st.lists(from_schema(schema.get("items", {}), spec, api_env, depth + 1), max_size=24)
    if kind == "number":
        return EDGE_NUMBERS
    if kind == "integer":
        return st.integers(-5, 10**6)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "string":
        return (
            st.sampled_from(["NVDA", "nvda", "AAPL", "ZZZZ", "qqq", "1h"])
            | _timestamps(api_env)
            | st.text(max_size=10)
        )
    return ANY_JSON


def _request_body_schema(op: dict) -> dict | None:
    content = op.get("requestBody", {}).get("content", {})
    return content.get("application/json", {}).get("schema")


def test_no_operation_answers_5xx(client, api_env):
    spec = client.app.openapi()
    operations = [(path, method, op) for path, item in spec["paths"].items() for method, op in item.items()]
    assert {(p, m) for p, m, _ in operations} >= {
        ("/health", "get"),
        ("/predict/component", "get"),
        ("/signal/index", "get"),
        ("/predict", "post"),
        ("/admin/reload", "post"),
    }
    seen: list[int] = []

    def call(index: int, params: dict, body, auth: str | None, raw: bool):
        path, method, op = operations[index]
        headers = {"content-type": "application/json"}
        if auth is not None:
            headers["Authorization"] = auth
        content = json.dumps(body) if not raw else str(body)
        r = client.request(
            method.upper(),
            path,
            params=params,
            content=content if body is not None else None,
            headers=headers,
        )
        seen.append(r.status_code)
        assert r.status_code < 500, (
            f"{method.upper()} {path} params={params} body={content[:300]} -> {r.text[:300]}"
        )
        r.json()  # every answer is JSON

    @st.composite
    def mutated_windows(draw):
        """A real window of a real symbol with one field of one bar replaced (mostly valid requests)."""
        symbol = draw(st.sampled_from(["NVDA", "AAPL", "MSFT"]))
        rows = window(api_env.bars, symbol, draw(st.integers(1, 30)))
        if draw(st.booleans()):
            i = draw(st.integers(0, len(rows) - 1))
            field = draw(st.sampled_from(["open", "high", "low", "close", "volume", "timestamp"]))
            rows[i][field] = draw(_timestamps(api_env) if field == "timestamp" else EDGE_NUMBERS)
        return {"symbol": symbol, "interval": "1h", "bars": rows}

    @st.composite
    def requests(draw):
        index = draw(st.integers(0, len(operations) - 1))
        _, _, op = operations[index]
        params = {}
        for p in op.get("parameters", []):
            if p.get("in") == "query" and draw(st.booleans() if not p.get("required") else st.just(True)):
                value = draw(from_schema(p.get("schema", {}), spec, api_env))
                params[p["name"]] = value if isinstance(value, str) else json.dumps(value)
        schema = _request_body_schema(op)
        body = draw(from_schema(schema, spec, api_env) | ANY_JSON | mutated_windows()) if schema else None
        auth = draw(st.sampled_from([None, f"Bearer {ADMIN_TOKEN}", "Bearer nope", "Basic x", ""]))
        raw = draw(st.booleans().map(lambda b: b and schema is not None and draw(st.integers(0, 9)) == 0))
        return index, params, body, auth, raw

    @settings(max_examples=160, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(requests())
    def run(req):
        call(*req)

    run()
    assert len(seen) >= 160
    assert seen.count(200) >= 10 and any(400 <= s < 500 for s in seen)
