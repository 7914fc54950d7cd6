"""Bad input at the HTTP edge (issue 11): NaN in a body, values of the wrong type, bodies
too large or sent without a token, and an actor that is gone. Over real HTTP on loopback,
against the two-tank site in lock-step."""

from __future__ import annotations

import secrets

import httpx
import pytest
import ray

from serve.auth import Token, hash_token
from tests.conftest import free_port
from tests.serve.test_refused_writes import assert_one_refusal_more

TOKEN = secrets.token_urlsafe(32)


@pytest.fixture(scope="module")
def api(two_tanks):
    from ray import serve

    from serve.app import start_http

    url = start_http(two_tanks, "127.0.0.1", free_port(), [Token("olga", "admin",
                                                                  hash_token(TOKEN))])
    two_tanks.run_for(600.0)
    with httpx.Client(base_url=url, timeout=60.0,
                      headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client
    serve.shutdown()


def unchanged(api, before):
    after = api.get("/assets/tank-01").json()
    return all(after[key] == before[key] for key in ("mode", "reference", "setpoints"))


@pytest.mark.parametrize(("path", "body", "field"), [
    ("mode", '{"mode": NaN}', "mode"),
    ("reference", '{"T_bulk": [NaN]}', "T_bulk"),
    ("limits", '{"m_oil": {"lower": NaN}}', "upper"),
    ("setpoints", '{"m_oil": [Infinity, NaN]}', "m_oil"),
])
def test_nan_in_a_malformed_body_is_422_naming_the_field_not_500(api, path, body, field):
    before = api.get("/assets/tank-01").json()
    reply = api.put(f"/assets/tank-01/{path}", content=body,
                    headers={"content-type": "application/json"})
    assert reply.status_code == 422, reply.text
    assert any(field in issue["loc"] for issue in reply.json()["detail"]), reply.json()
    assert unchanged(api, before)


@pytest.mark.parametrize(("path", "body", "field"), [
    ("setpoints", {"m_oil": True}, "m_oil"),
    ("setpoints", {"m_oil": "2.0"}, "m_oil"),
    ("reference", {"T_bulk": "433.5"}, "T_bulk"),
    ("limits", {"m_oil": {"lower": False, "upper": 2.0}}, "lower"),
])
def test_a_value_of_the_wrong_type_is_422_not_coerced(api, path, body, field):
    before = api.get("/assets/tank-01").json()
    audit = api.get("/assets/tank-01/audit", params={"limit": 100_000}).json()
    reply = api.put(f"/assets/tank-01/{path}", json=body)
    assert reply.status_code == 422, reply.text
    assert any(field in issue["loc"] for issue in reply.json()["detail"]), reply.json()
    assert unchanged(api, before)
    assert_one_refusal_more(api, audit)


def test_an_integer_is_still_a_number(api):
    reply = api.put("/assets/tank-01/reference", json={"T_bulk": 433})
    assert reply.status_code == 200 and reply.json()["reference"]["T_bulk"] == 433.0


def test_a_request_without_a_token_is_401_before_its_body_is_parsed(api):
    bare = httpx.Client(base_url=str(api.base_url), timeout=60.0)
    reply = bare.put("/assets/tank-01/mode", content=b'{"mode": ',
                     headers={"content-type": "application/json"})
    assert reply.status_code == 401, reply.text  # not 422: the body was not looked at
    assert reply.headers["www-authenticate"] == "Bearer"
    wrong = bare.put("/assets/tank-01/mode", content=b"x" * (2 << 20),
                     headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["detail"] == "invalid bearer token"


def test_a_body_over_the_cap_is_413_with_or_without_a_length_and_is_not_echoed(api):
    big = b'{"mode": "' + b"A" * (2 << 20) + b'"}'
    reply = api.put("/assets/tank-01/mode", content=big,
                    headers={"content-type": "application/json"})
    assert reply.status_code == 413 and "larger than the 1048576 bytes" in reply.json()["detail"]

    def chunks():
        for start in range(0, len(big), 65536):
            yield big[start:start + 65536]

    chunked = api.put("/assets/tank-01/mode", content=chunks(),
                      headers={"content-type": "application/json"})
    assert chunked.status_code == 413
    assert len(reply.content) < 1000 and len(chunked.content) < 1000
    long_mode = api.put("/assets/tank-01/mode", json={"mode": "A" * 500_000})
    assert long_mode.status_code == 422 and len(long_mode.content) < 2000  # no echo


def test_an_asset_whose_actor_is_gone_answers_503_with_a_reason(api, two_tanks):
    """Near the end of this module: tank-02's actor (its shard, which hosts it alone) is
    killed for good."""
    assert two_tanks.directory["tank-02"] != two_tanks.directory["tank-01"]
    ray.kill(two_tanks.assets["tank-02"].actor, no_restart=True)
    reply = api.get("/assets/tank-02")
    assert reply.status_code == 503, reply.text
    assert "restarting or gone" in reply.json()["detail"]
    assert reply.headers["retry-after"] == "2"
    assert api.get("/assets/tank-01").status_code == 200


def test_reads_that_need_the_safety_actor_answer_503_while_it_is_gone(api, two_tanks):
    """Last in this module: the safety actor is killed for good. Limits, proposals and the
    audit need it: 503 with the reason, not 500; the asset's own status still answers."""
    ray.kill(two_tanks.safety, no_restart=True)
    for path in ("/assets/tank-01/limits", "/assets/tank-01/proposals",
                 "/assets/tank-01/audit"):
        reply = api.get(path)
        assert reply.status_code == 503, (path, reply.text)
        assert reply.json()["detail"], path
    assert api.get("/assets/tank-01").status_code == 200
