"""The OPC UA gateway over real OPC UA on loopback, against the two-tank site in lock-step.

A SCADA client (asyncua) browses the address space, subscribes to a setpoint and sees
each value the safety actor applies; a write outside the signal's bounds is refused
with BadOutOfRange and changes nothing; a clamped write shows the applied value; every
write is audited under the session's user. With Basic256Sha256 SignAndEncrypt
configured, only that endpoint is offered and only configured users get in. An alarm
(tank-02's ``asset_off``, raised when the tank is switched OFF) reaches a client
subscribed to the Server's AlarmConditionType events, and its Acknowledge goes to the
asset under the session's user; a viewer may neither acknowledge nor write.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from pathlib import Path

import msgspec
import pytest
import ray
from asyncua import Client, ua
from asyncua.crypto import security_policies
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from cryptography.x509.oid import ExtendedKeyUsageOID

from actors.opcua import OpcUaActor
from actors.opcua_space import UNECE_NAMESPACE, unit_id
from engine.config import AlarmSettings, OpcUaSettings
from engine.passwords import hash_password
from engine.status import AssetStatus, StatusBatch
from tests.conftest import free_port

NAMESPACE_URI = "urn:twinloop:two-tanks"
TIMEOUT_S = 20.0
PERIOD_S = 120.0
"""The tanks' control period (tests/sites/two_tanks.toml): one tick."""
OFF_ALARM = "asset_off.condition"
TWO_TANKS_ALARMS = {"tank-02": [AlarmSettings(signal="asset_off", kind="condition",
                                              priority="HIGH", message="tank-02 is off")]}
ACKNOWLEDGE = ua.NodeId(ua.ObjectIds.AcknowledgeableConditionType_Acknowledge)


@pytest.fixture(scope="module")
def url(two_tanks, tmp_path_factory):
    settings = OpcUaSettings(port=free_port(),
                             certificate_dir=str(tmp_path_factory.mktemp("opcua-pki")))
    url = two_tanks.serve_opcua(settings)
    two_tanks.run_for(600.0)
    return url


class Changes:
    """Subscription handler: every data change notification, in order."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[ua.DataValue] = asyncio.Queue()

    def datachange_notification(self, node, value, data) -> None:
        self.queue.put_nowait(data.monitored_item.Value)

    async def next(self) -> ua.DataValue:
        return await asyncio.wait_for(self.queue.get(), TIMEOUT_S)


async def node_of(client: Client, asset: str, folder: str, name: str):
    ns = await client.get_namespace_index(NAMESPACE_URI)
    return await client.nodes.objects.get_child(
        [f"{ns}:Assets", f"{ns}:{asset}", f"{ns}:{folder}", f"{ns}:{name}"])


async def property_of(node, name: str):
    return await (await node.get_child(f"0:{name}")).read_value()


def test_measurements_are_analog_items_with_range_units_and_twin_time(url, two_tanks):
    status = ray.get(two_tanks.assets["tank-01"].status.remote())

    async def read():
        async with Client(url) as client:
            node = await node_of(client, "tank-01", "Measurements", "T_bulk")
            value = await node.read_data_value()
            kind = await node.read_type_definition()
            eu_range = await property_of(node, "EURange")
            units = await property_of(node, "EngineeringUnits")
            estimate = await (await node_of(client, "tank-01", "Estimates", "T_bulk")).read_value()
            mode = await (await node_of(client, "tank-01", "Status", "mode")).read_value()
            healthy = await (await node_of(client, "tank-01", "Status", "healthy")).read_value()
            with pytest.raises(ua.UaStatusCodeError):
                await node.write_value(400.0)
            with pytest.raises(ua.uaerrors.BadUserAccessDenied):  # no reshaping by clients
                await client.delete_nodes([node])
            return value, kind, eu_range, units, estimate, mode, healthy

    value, kind, eu_range, units, estimate, mode, healthy = asyncio.run(read())
    measured = status["measurement"]["T_bulk"]
    assert kind == ua.NodeId(ua.ObjectIds.AnalogItemType)
    assert value.Value.Value == measured["value"] and value.StatusCode.is_good()
    assert value.SourceTimestamp.timestamp() == pytest.approx(measured["time"])
    assert (eu_range.Low, eu_range.High) == (273.15, 473.15)
    assert (units.NamespaceUri, units.UnitId, units.DisplayName.Text) == (
        UNECE_NAMESPACE, unit_id("KEL"), "K")
    assert estimate == status["estimate"]["T_bulk"]["value"]
    assert (mode, healthy) == ("AUTONOMOUS", True)


def test_subscriber_sees_each_applied_setpoint_and_an_out_of_range_write_changes_nothing(
        url, two_tanks):
    """MANUAL mode (the controller's proposals are refused), so every change of m_oil is the
    client's; 300 s of twin time between writes keeps them inside the 0.02 kg/s/s rate."""
    asset = two_tanks.assets["tank-01"]
    ray.get(asset.set_mode.remote("MANUAL", "test"))

    async def scenario():
        loop = asyncio.get_running_loop()
        async with Client(url) as client:
            node = await node_of(client, "tank-01", "Setpoints", "m_oil")
            changes = Changes()
            subscription = await client.create_subscription(10, changes)
            await subscription.subscribe_data_change(node)
            await changes.next()  # the current value
            seen = []
            for value in (7.0, 4.5, 2.0):
                await loop.run_in_executor(None, two_tanks.run_for, 300.0)
                await node.write_value(value)
                seen.append((await changes.next()).Value.Value)
            with pytest.raises(ua.uaerrors.BadOutOfRange):
                await node.write_value(50.0)
            await asyncio.sleep(0.5)
            return seen, await node.read_value(), changes.queue.qsize()

    seen, after, pending = asyncio.run(scenario())
    assert seen == [7.0, 4.5, 2.0]
    assert after == 2.0 and pending == 0
    assert ray.get(asset.status.remote())["setpoints"]["m_oil"]["value"] == 2.0
    records = ray.get(two_tanks.safety.audit_records.remote("tank-01", limit=100_000))
    operator = [r for r in records if r["source"] == "operator" and r["signal"] == "m_oil"]
    assert [(r["user"], r["applied"]) for r in operator[-3:]] == [
        ("anonymous", 7.0), ("anonymous", 4.5), ("anonymous", 2.0)]


def test_a_clamped_write_answers_good_clamped_and_shows_the_applied_value(url, two_tanks):
    """11 kg/s is inside m_oil's engineering bounds (12) but above its safety limit (10);
    after 600 s the rate limit (0.02 kg/s per s) allows the step from 2 kg/s."""
    two_tanks.run_for(600.0)

    async def write():
        async with Client(url) as client:
            node = await node_of(client, "tank-01", "Setpoints", "m_oil")
            value = ua.DataValue(ua.Variant(11.0, ua.VariantType.Double))
            [result] = await client.uaclient.write_attributes(
                [node.nodeid], [value], ua.AttributeIds.Value)
            return result, await node.read_value()

    result, shown = asyncio.run(write())
    assert result.value == ua.StatusCodes.GoodClamped
    assert shown == 10.0
    last = ray.get(two_tanks.safety.audit_records.remote("tank-01", outcome="clamped"))[-1]
    assert (last["user"], last["requested"], last["applied"]) == ("anonymous", 11.0, 10.0)


README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readmes_node_id_and_write_results_are_what_the_server_does(url, two_tanks):
    """The README's example node id (``ns=<index>;s=tank-01.Setpoints.m_oil``) reads the
    setpoint, its index is the one of the namespace URI, and a NaN or infinite write
    answers the status the README's table gives, changing nothing."""
    text = README.read_text()
    index = int(re.search(r"`ns=(\d+);s=tank-01\.Setpoints\.m_oil`", text).group(1))
    row = next(line for line in text.splitlines() if "NaN" in line and "`Bad" in line)
    documented = re.search(r"`(Bad\w+)`", row).group(1)
    ray.get(two_tanks.assets["tank-01"].set_mode.remote("MANUAL", "test"))

    async def scenario():
        async with Client(url) as client:
            resolved = await client.get_namespace_index(NAMESPACE_URI)
            node = client.get_node(f"ns={index};s=tank-01.Setpoints.m_oil")
            before = await node.read_value()
            results = []
            for value in (math.nan, math.inf):
                [result] = await client.uaclient.write_attributes(
                    [node.nodeid], [ua.DataValue(ua.Variant(value, ua.VariantType.Double))],
                    ua.AttributeIds.Value)
                results.append(result.name)
            return resolved, before, results, await node.read_value()

    resolved, before, results, after = asyncio.run(scenario())
    assert resolved == index
    assert results == [documented, documented]
    assert after == before


def test_writes_to_an_off_asset_or_of_a_string_are_refused_and_change_nothing(url, two_tanks):
    asset = two_tanks.assets["tank-01"]
    ray.get(asset.set_mode.remote("OFF", "test"))

    async def write():
        async with Client(url) as client:
            node = await node_of(client, "tank-01", "Setpoints", "m_oil")
            before = await node.read_value()
            with pytest.raises(ua.uaerrors.BadInvalidState):
                await node.write_value(5.0)
            with pytest.raises(ua.uaerrors.BadTypeMismatch):
                await node.write_value(ua.DataValue(ua.Variant("5.0", ua.VariantType.String)))
            return before, await node.read_value()

    try:
        before, after = asyncio.run(write())
    finally:
        ray.get(asset.set_mode.remote("MANUAL", "test"))
    assert after == before
    last = ray.get(two_tanks.safety.audit_records.remote("tank-01", outcome="rejected"))[-1]
    assert (last["user"], last["requested"], last["applied"]) == ("anonymous", 5.0, None)
    assert "OFF" in last["reason"]


def test_writes_refused_at_the_opcua_edge_are_on_record_with_user_and_reason(url, two_tanks):
    """A String, a NaN and 1e6 kg/s written to tank-02's m_oil are refused before the
    gate (BadTypeMismatch, BadOutOfRange twice); each is in the audit, outcome refused,
    source opcua, under the session's user, with the reason (sent in a batch within
    actors.refusals.FLUSH_S: waited for)."""
    async def write():
        async with Client(url) as client:
            node = await node_of(client, "tank-02", "Setpoints", "m_oil")
            with pytest.raises(ua.uaerrors.BadTypeMismatch):
                await node.write_value(ua.DataValue(ua.Variant("5.0", ua.VariantType.String)))
            for value in (math.nan, 1e6):
                with pytest.raises(ua.uaerrors.BadOutOfRange):
                    await node.write_value(value)

    asyncio.run(write())
    deadline = time.monotonic() + TIMEOUT_S
    while len(refused := ray.get(two_tanks.safety.audit_records.remote(
            "tank-02", outcome="refused"))) < 3:
        assert time.monotonic() < deadline, refused
        time.sleep(0.2)
    assert {(r["source"], r["user"], r["signal"], r["applied"]) for r in refused} == {
        ("opcua", "anonymous", "m_oil", None)}
    string, nan, huge = refused
    assert "String, not a number" in string["reason"] and string["requested"] is None
    assert "not a finite number" in nan["reason"] and nan["requested"] is None
    assert "above its upper bound 12" in huge["reason"] and huge["requested"] == 1e6


class Alarms:
    """Subscription handler: every AlarmConditionType event of one alarm, in order."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.queue: asyncio.Queue = asyncio.Queue()

    def event_notification(self, event) -> None:
        if event.ConditionName == self.name:
            self.queue.put_nowait(event)

    async def next(self):
        return await asyncio.wait_for(self.queue.get(), TIMEOUT_S)

    async def subscribe(self, client: Client, refresh: bool = False):
        """Subscribe to the Server object's alarm events; ``refresh``: have the server
        send the alarms that need attention now (ConditionRefresh)."""
        subscription = await client.create_subscription(10, self)
        await subscription.subscribe_events(client.nodes.server, ua.ObjectIds.AlarmConditionType)
        if refresh:
            await client.get_node(ua.NodeId(ua.ObjectIds.ConditionType)).call_method(
                ua.NodeId(ua.ObjectIds.ConditionType_ConditionRefresh),
                ua.Variant(subscription.subscription_id, ua.VariantType.UInt32))
        return subscription


async def acknowledge(client: Client, event, comment: str) -> None:
    await client.get_node(event.NodeId).call_method(
        ACKNOWLEDGE, ua.Variant(event.EventId, ua.VariantType.ByteString),
        ua.LocalizedText(comment))


def test_an_alarm_reaches_an_event_subscriber_and_its_acknowledgement_shows(url, two_tanks):
    """tank-02 switched OFF: within a tick, a client subscribed to the Server's events gets
    the alarm active and unacknowledged, HIGH (severity 700), from tank-02; Acknowledge
    with that event's id goes to the asset under the session's user (audited as an HTTP
    acknowledgement is), and the next event shows it acknowledged; a second Acknowledge is
    refused: the condition is acknowledged already."""
    asset = two_tanks.assets["tank-02"]

    async def scenario():
        loop = asyncio.get_running_loop()
        async with Client(url) as client:
            alarms = Alarms(OFF_ALARM)
            await alarms.subscribe(client)
            await loop.run_in_executor(None, ray.get, asset.set_mode.remote("OFF", "test"))
            await loop.run_in_executor(None, two_tanks.run_for, PERIOD_S)
            raised = await alarms.next()
            await acknowledge(client, raised, "seen from SCADA")
            acked = await alarms.next()
            with pytest.raises(ua.uaerrors.BadConditionBranchAlreadyAcked):
                await acknowledge(client, acked, "again")
            return raised, acked

    try:
        raised, acked = asyncio.run(scenario())
    finally:
        ray.get(asset.set_mode.remote("AUTONOMOUS", "test"))
    assert (raised.SourceName, raised.Severity, raised.Retain) == ("tank-02", 700, True)
    assert getattr(raised, "ActiveState/Id") is True
    assert getattr(raised, "AckedState/Id") is False
    assert raised.Message.Text == f"{OFF_ALARM} UNACKNOWLEDGED: tank-02 is off"
    assert raised.NodeId == acked.NodeId  # one condition
    assert (getattr(acked, "ActiveState/Id"), getattr(acked, "AckedState/Id")) == (True, True)
    records = ray.get(two_tanks.safety.audit_records.remote("tank-02", limit=100_000))
    acks = [r for r in records if r["signal"] == OFF_ALARM and r["user"] != "system"]
    assert [(r["user"], r["source"]) for r in acks] == [("anonymous", "alarm")]
    assert "UNACKNOWLEDGED -> ACKNOWLEDGED" in acks[0]["reason"]
    assert "seen from SCADA" in acks[0]["reason"]


@pytest.fixture(scope="module")
def secure(two_tanks, tmp_path_factory):
    """A second gateway on the same assets, with Basic256Sha256 SignAndEncrypt, the
    operator alice and the viewer bob, and a client certificate for it."""
    pki = tmp_path_factory.mktemp("opcua-secure")
    settings = OpcUaSettings(port=free_port(), security="Basic256Sha256_SignAndEncrypt",
                             users={"alice": hash_password("wonderland"),
                                    "bob": hash_password("builder")},
                             roles={"bob": "viewer"},
                             certificate_dir=str(pki / "server"))
    site = msgspec.structs.replace(two_tanks.site, opcua=settings)
    gateway = OpcUaActor.remote(site, two_tanks.assets, two_tanks.safety)
    url = ray.get(gateway.start.remote())
    key, certificate = pki / "client-key.pem", pki / "client-cert.der"
    asyncio.run(setup_self_signed_certificate(
        key, certificate, "urn:twinloop:test-client", "localhost",
        [ExtendedKeyUsageOID.CLIENT_AUTH], {"organizationName": "TwinLoop tests"}))
    yield url, key, certificate
    ray.get(gateway.stop.remote())
    ray.kill(gateway)


async def secure_client(url, key, certificate, user: str, password: str) -> Client:
    client = Client(url)
    client.application_uri = "urn:twinloop:test-client"
    client.set_user(user)
    client.set_password(password)
    await client.set_security(security_policies.SecurityPolicyBasic256Sha256,
                              certificate=str(certificate), private_key=str(key),
                              mode=ua.MessageSecurityMode.SignAndEncrypt)
    return client


def test_secure_server_offers_only_basic256sha256_sign_and_encrypt(secure):
    url, _, _ = secure

    async def endpoints():
        return await Client(url).connect_and_get_server_endpoints()

    offered = asyncio.run(endpoints())
    assert offered
    assert {(e.SecurityPolicyUri, e.SecurityMode) for e in offered} == {
        (security_policies.SecurityPolicyBasic256Sha256.URI, ua.MessageSecurityMode.SignAndEncrypt)}
    tokens = {t.TokenType for e in offered for t in e.UserIdentityTokens}
    assert tokens == {ua.UserTokenType.UserName}


def test_user_with_the_right_password_writes_and_is_named_in_the_audit(secure, two_tanks):
    url, key, certificate = secure
    two_tanks.run_for(300.0)

    async def write():
        async with await secure_client(url, key, certificate, "alice", "wonderland") as client:
            node = await node_of(client, "tank-01", "Setpoints", "m_oil")
            await node.write_value(8.5)
            return await node.read_value()

    assert asyncio.run(write()) == 8.5
    last = ray.get(two_tanks.safety.audit_records.remote("tank-01"))[-1]
    assert (last["user"], last["signal"], last["applied"]) == ("alice", "m_oil", 8.5)


@pytest.mark.parametrize(("user", "password"), [("alice", "looking-glass"), ("mallory", "x")])
def test_wrong_password_or_unknown_user_is_refused(secure, user, password):
    url, key, certificate = secure

    async def connect():
        async with await secure_client(url, key, certificate, user, password):
            pass

    with pytest.raises(ua.uaerrors.BadUserAccessDenied):
        asyncio.run(connect())


def test_anonymous_client_without_security_is_refused(secure):
    url, _, _ = secure

    async def connect():
        async with Client(url):
            pass

    with pytest.raises(ua.UaError):
        asyncio.run(connect())


def test_a_viewer_may_not_acknowledge_an_alarm_nor_write_a_setpoint(secure, two_tanks):
    """tank-02 OFF again: its alarm awaits acknowledgement. The viewer bob, who gets it
    by ConditionRefresh, is refused Acknowledge (BadUserAccessDenied) and a setpoint
    write (on record as refused); the operator alice acknowledges the same event."""
    url, key, certificate = secure
    asset = two_tanks.assets["tank-02"]
    two_tanks.run_for(PERIOD_S)  # in AUTONOMOUS an earlier test's acknowledged alarm clears
    ray.get(asset.set_mode.remote("OFF", "test"))
    two_tanks.run_for(PERIOD_S)

    async def scenario():
        async with await secure_client(url, key, certificate, "bob", "builder") as client:
            alarms = Alarms(OFF_ALARM)
            await alarms.subscribe(client, refresh=True)
            event = await alarms.next()
            while getattr(event, "AckedState/Id"):  # statuses are pushed asynchronously:
                event = await alarms.next()  # an earlier test's transitions may come first
            with pytest.raises(ua.uaerrors.BadUserAccessDenied):
                await acknowledge(client, event, "bob was here")
            with pytest.raises(ua.uaerrors.BadUserAccessDenied):
                await (await node_of(client, "tank-01", "Setpoints", "m_oil")).write_value(5.0)
        async with await secure_client(url, key, certificate, "alice", "wonderland") as client:
            await acknowledge(client, event, "alice saw it")
        return event

    try:
        event = asyncio.run(scenario())
    finally:
        ray.get(asset.set_mode.remote("AUTONOMOUS", "test"))
    assert getattr(event, "AckedState/Id") is False
    alarm = next(a for a in ray.get(asset.status.remote())["alarms"] if a["name"] == OFF_ALARM)
    assert alarm["state"] == "ACKNOWLEDGED"
    records = ray.get(two_tanks.safety.audit_records.remote("tank-02", limit=100_000))
    acks = [r["user"] for r in records if r["signal"] == OFF_ALARM and r["user"] != "system"]
    assert acks[-1] == "alice" and "bob" not in acks
    deadline = time.monotonic() + TIMEOUT_S  # refusals are sent in batches: waited for
    while not (refused := [r for r in ray.get(two_tanks.safety.audit_records.remote(
            "tank-01", outcome="refused")) if r["user"] == "bob"]):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert [(r["source"], r["signal"], r["requested"]) for r in refused] == [
        ("opcua", "m_oil", 5.0)]
    assert "BadUserAccessDenied: bob is a viewer" in refused[0]["reason"]


def test_a_status_that_cannot_be_shown_does_not_stop_the_rest_of_its_batch(url, two_tanks):
    """The status board does not wait for the gateway's answer, so one status the server
    cannot show (an asset it does not serve) is logged, and the batch goes on: tank-01's
    status after it is shown (its revision, with a new mode, reaches the client)."""
    status = msgspec.convert(ray.get(two_tanks.assets["tank-01"].status.remote()), AssetStatus)
    shown = msgspec.structs.replace(status, revision=status.revision + 1, mode="ADVISORY")
    batch = StatusBatch(shard="test", statuses=[
        msgspec.structs.replace(status, id="no-such-asset"), shown])
    ray.get(two_tanks.opcua.publish_statuses.remote(msgspec.msgpack.encode(batch)))

    async def mode():
        async with Client(url) as client:
            return await (await node_of(client, "tank-01", "Status", "mode")).read_value()

    assert asyncio.run(mode()) == "ADVISORY"
    ray.get(two_tanks.opcua.publish_statuses.remote(msgspec.msgpack.encode(StatusBatch(
        shard="test", statuses=[msgspec.structs.replace(status, revision=status.revision + 2)]))))


def test_stale_measurements_turn_uncertain_and_status_reports_the_fault(url, two_tanks):
    """tank-02's plant dies (last test of the module): after more than its 600 s
    max_measurement_age_s its measurements are UncertainLastUsableValue, values unchanged."""
    async def read(names):
        async with Client(url) as client:
            nodes = [await node_of(client, "tank-02", folder, name) for folder, name in names]
            return [await node.read_data_value(raise_on_bad_status=False) for node in nodes]

    names = [("Measurements", "T_bulk"), ("Status", "healthy"), ("Status", "errors")]
    before, _, _ = asyncio.run(read(names))
    assert before.StatusCode.is_good()
    ray.kill(two_tanks.plants["tank-02"].actor, no_restart=True)  # tank-02's plant shard
    two_tanks.run_for(720.0)
    after, healthy, errors = asyncio.run(read(names))
    assert after.StatusCode.value == ua.StatusCodes.UncertainLastUsableValue
    assert after.Value.Value == before.Value.Value
    assert healthy.Value.Value is False
    assert errors.Value.Value and "PlantShard" in errors.Value.Value[0]
