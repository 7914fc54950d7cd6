"""The OpenAPI document is the contract: every route declares typed bodies for its answer
and its errors, real answers validate against them, and /docs works without internet.
Over real HTTP on loopback, against the two-tank site in lock-step."""

from __future__ import annotations

import re
import secrets

import httpx
import pytest
from jsonschema import Draft202012Validator

from engine.config import AlarmSettings
from serve.auth import Token, hash_token
from tests.conftest import free_port

TOKENS = {"admin": secrets.token_urlsafe(32), "viewer": secrets.token_urlsafe(32)}

TWO_TANKS_ALARMS = {"tank-01": [AlarmSettings(signal="T_bulk", kind="HI", limit=300.0)]}
"""Always active: an alarm to acknowledge."""

AUTHENTICATED_ERRORS = {"401", "403"}
"""Every route but /healthz answers these."""


@pytest.fixture(scope="module")
def api(two_tanks):
    from ray import serve

    from serve.app import start_http

    tokens = [Token(role, role, hash_token(token)) for role, token in TOKENS.items()]
    url = start_http(two_tanks, "127.0.0.1", free_port(), tokens)
    two_tanks.run_for(600.0)
    with httpx.Client(base_url=url, timeout=60.0,
                      headers={"Authorization": f"Bearer {TOKENS['admin']}"}) as client:
        yield client
    serve.shutdown()


@pytest.fixture(scope="module")
def document(api):
    return api.get("/openapi.json").json()


def operations(document):
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield method.upper(), path, operation


def check(document, reply: httpx.Response, method: str, path: str) -> None:
    """``reply`` is declared for its status in ``document`` with its content type, and its
    body validates against the declared schema."""
    operation = document["paths"][path][method.lower()]
    status = str(reply.status_code)
    assert status in operation["responses"], f"{method} {path}: {status} is not declared"
    content = operation["responses"][status]["content"]
    media = reply.headers["content-type"]
    declared = [m for m in content if m.split(";")[0] == media.split(";")[0]]
    assert declared, f"{method} {path} {status}: {media} is not declared ({list(content)})"
    schema = content[declared[0]]["schema"]
    body = reply.json() if media.startswith("application/json") else reply.text
    validator = Draft202012Validator({**schema, "components": document["components"]})
    problems = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                for e in validator.iter_errors(body)]
    assert not problems, f"{method} {path} {status}: {problems[:5]}"


def test_every_route_declares_a_typed_answer_and_its_error_answers(document):
    for method, path, operation in operations(document):
        responses = operation["responses"]
        ok = responses["200"]["content"]
        for media, body in ok.items():
            schema = body["schema"]
            assert schema not in ({}, {"type": "object"}, {"additionalProperties": True,
                                                           "type": "object"}), (method, path)
            if media.startswith("text/plain"):
                assert schema == {"type": "string"}
        if path == "/healthz":
            continue
        expected = {"401"} if path == "/whoami" else AUTHENTICATED_ERRORS  # any role will do
        assert expected <= set(responses), (method, path, set(responses))
        if "{asset_id}" in path:
            assert {"404", "422"} <= set(responses), (method, path)
        if method in ("PUT", "POST"):
            assert "503" in responses, (method, path)
        for status, response in responses.items():
            if status != "200":
                assert response["content"]["application/json"]["schema"]["$ref"].startswith(
                    "#/components/schemas/"), (method, path, status)


def test_metrics_are_declared_and_served_as_prometheus_text(api, document):
    content = document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(content) == ["text/plain; version=0.0.4; charset=utf-8"]
    reply = api.get("/metrics")
    assert reply.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    check(document, reply, "GET", "/metrics")


def test_a_real_answer_of_every_route_validates_against_its_declared_schema(
        api, document, two_tanks):
    requests = [
        ("GET", "/healthz", None), ("GET", "/assets", None), ("GET", "/assets/tank-01", None),
        ("GET", "/whoami", None), ("GET", "/fleet", None), ("GET", "/assets/tank-01/view", None),
        ("PUT", "/assets/tank-01/reference", {"T_bulk": 433.15}),
        ("PUT", "/assets/tank-01/setpoints", {"m_oil": 2.0}),
        ("GET", "/assets/tank-01/limits", None),
        ("PUT", "/assets/tank-01/limits", {"m_oil": {"lower": 0.2, "upper": 10.0}}),
        ("GET", "/assets/tank-01/controller", None),
        ("PUT", "/assets/tank-01/controller", {"move_suppression": {"m_oil": 0.1}}),
        ("GET", "/assets/tank-01/audit", None),
        ("PUT", "/assets/tank-02/mode", {"mode": "ADVISORY"}),
        ("GET", "/assets/tank-01/history?signals=T_bulk,estimate.T_bulk", None),
        ("GET", "/assets/tank-01/history?signals=T_bulk&mode=aggregate&step=600", None),
        ("GET", "/assets/tank-01/history?signals=T_bulk&format=csv", None),
        ("GET", "/assets/tank-01/cards", None),
        ("GET", "/alarms", None), ("GET", "/assets/tank-01/alarms", None),
        ("POST", "/alarms/tank-01:T_bulk.HI/acknowledge", {"reason": "seen"}),
        ("POST", "/alarms/tank-01:T_bulk.HI/shelve", {"duration_s": 600.0}),
        ("POST", "/alarms/tank-01:T_bulk.HI/unshelve", None),
        ("POST", "/assets/tank-01/whatif", {"duration_s": 600.0, "controller": False,
                                             "changes": {"setpoints": {"m_oil": 1.0}},
                                             "timeout_s": 300.0}),
    ]
    seen = set()
    for method, path, body in requests:
        reply = api.request(method, path, json=body)
        assert reply.status_code == 200, (path, reply.text)
        template = re.sub(r"/assets/[^/]+", "/assets/{asset_id}", path.split("?")[0])
        template = re.sub(r"/alarms/[^/]+/", "/alarms/{alarm}/", template)
        check(document, reply, method, template)
        seen.add((method, template))

    two_tanks.run_for(3 * 120.0)  # tank-02 is ADVISORY: its proposals queue
    queued = api.get("/assets/tank-02/proposals")
    check(document, queued, "GET", "/assets/{asset_id}/proposals")
    first, second = [p["n"] for p in queued.json()[:2]]
    for action, number in (("approve", first), ("reject", second)):
        reply = api.post(f"/assets/tank-02/proposals/{number}/{action}")
        assert reply.status_code == 200, reply.text
        check(document, reply, "POST", f"/assets/{{asset_id}}/proposals/{{number}}/{action}")
        seen.add(("POST", f"/assets/{{asset_id}}/proposals/{{number}}/{action}"))
    for path in ("/assets/tank-01/safe-state", "/safe-state"):  # last: both tanks go safe
        reply = api.post(path)
        assert reply.status_code == 200, (path, reply.text)
        template = re.sub(r"/assets/[^/]+", "/assets/{asset_id}", path)
        check(document, reply, "POST", template)
        seen.add(("POST", template))
    seen |= {("GET", "/assets/{asset_id}/proposals"), ("GET", "/metrics")}
    # plans need a DRA pipeline: tests/serve/test_whatif_plan_http.py checks their answers
    seen |= {("POST", "/assets/{asset_id}/plan"), ("GET", "/assets/{asset_id}/plan"),
             ("POST", "/assets/{asset_id}/plan/{version}/approve")}
    # cards need a rod pump: tests/actors/test_cards.py checks their answers
    seen.add(("POST", "/assets/{asset_id}/cards"))
    assert seen == {(m, p) for m, p, _ in operations(document)}


def test_error_answers_validate_against_their_declared_schemas(api, document):
    bare = httpx.Client(base_url=str(api.base_url), timeout=60.0)
    viewer = {"Authorization": f"Bearer {TOKENS['viewer']}"}
    cases = [
        (bare.get("/assets/tank-01"), "GET", "/assets/{asset_id}", 401),
        (bare.put("/assets/tank-01/mode", json={"mode": "OFF"}, headers=viewer),
         "PUT", "/assets/{asset_id}/mode", 403),
        (api.get("/assets/tank-99"), "GET", "/assets/{asset_id}", 404),
        (api.post("/assets/tank-01/proposals/999/reject"),
         "POST", "/assets/{asset_id}/proposals/{number}/reject", 404),
        (api.put("/assets/tank-01/mode", json={"mode": "FAST"}),
         "PUT", "/assets/{asset_id}/mode", 422),
        (api.put("/assets/tank-01/reference", json={"T_bulk": 500.0}),
         "PUT", "/assets/{asset_id}/reference", 422),
        (api.put("/assets/tank-01/controller", json={"horizon": 0}),
         "PUT", "/assets/{asset_id}/controller", 422),
        (api.get("/assets/tank-01/audit", params={"limit": 0}),
         "GET", "/assets/{asset_id}/audit", 422),
        (api.put("/assets/tank-01/reference", content=b"0" * (2 << 20)),
         "PUT", "/assets/{asset_id}/reference", 413),
        (api.get("/assets/tank-01/history", params={"signals": "T_nothing"}),
         "GET", "/assets/{asset_id}/history", 422),
        (api.post("/alarms/tank-01:measurement_stale/acknowledge"),
         "POST", "/alarms/{alarm}/acknowledge", 409),
        (api.post("/alarms/tank-01:nothing/shelve", json={"duration_s": 60.0}),
         "POST", "/alarms/{alarm}/shelve", 404),
    ]
    for reply, method, path, status in cases:
        assert reply.status_code == status, (method, path, reply.text)
        check(document, reply, method, path)
    # both shapes of 422 occur, and each is what the document says
    assert isinstance(cases[4][0].json()["detail"], list)
    assert "above its upper bound" in cases[5][0].json()["detail"]


@pytest.mark.parametrize("path", ["reference", "mode", "setpoints", "limits", "controller"])
def test_a_body_that_is_not_json_is_a_declared_400(api, document, path):
    """Found by schemathesis: bytes that are not JSON got FastAPI's 400, which no route
    declared."""
    before = api.get("/assets/tank-01").json()
    reply = api.put(f"/assets/tank-01/{path}", content=b'\x03\x1eL\x05i\xffW',
                    headers={"content-type": "application/json"})
    assert reply.status_code == 400, reply.text
    check(document, reply, "PUT", f"/assets/{{asset_id}}/{path}")
    after = api.get("/assets/tank-01").json()
    assert all(after[key] == before[key] for key in ("mode", "reference", "setpoints"))


@pytest.mark.parametrize(("path", "methods"), [
    ("/assets/tank-01/controller", "GET, PUT"), ("/assets/tank-01/limits", "GET, PUT"),
    ("/assets/tank-01/reference", "PUT"), ("/safe-state", "POST"),
])
def test_a_method_the_path_lacks_is_405_allowing_every_method_it_has(api, path, methods):
    """Found by schemathesis: OPTIONS on a path with a GET and a PUT route said
    ``Allow: GET``, so a client would believe the path read-only."""
    reply = api.options(path)
    assert reply.status_code == 405, reply.text
    assert reply.headers["allow"] == methods
    assert reply.json() == {"detail": "Method Not Allowed"}


def test_docs_load_swagger_ui_from_this_server_only(api):
    bare = httpx.Client(base_url=str(api.base_url), timeout=60.0)
    page = bare.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    hosts = re.findall(r"https?://[^\s\"'<>]+", page.text)
    assert not hosts, f"/docs references external hosts: {hosts}"
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
    for url in assets:
        reply = bare.get(url)
        assert reply.status_code == 200 and len(reply.content) > 0, url
    assert "SwaggerUIBundle" in bare.get(next(a for a in assets if a.endswith(".js"))).text
    assert bare.get("/openapi.json").status_code == 200
