"""OpcUaActor: the site's OPC UA server (asyncua), running in an async Ray actor's event loop.

    shards --StatusBatch--> status board --StatusBatch (each tick instant, each operator
                                           action)--> OpcUaActor --> nodes
    OpcUaActor --status poll (every opcua.refresh_s)--------> assets
    SCADA client --Write Setpoints/<input>--> asset.write_setpoints(values, user)
                                              --> SafetyActor (gated, audited) --> result
    OpcUaActor --AlarmConditionType event (each alarm state change)--> subscribed clients
    SCADA client --Acknowledge(ConditionId)--> asset.alarm_action(name, "acknowledge", user)
                                               --> audit --> next status --> event

The address space is described in :mod:`actors.opcua_space`. A node is written only
when its value or status code changes, so subscriptions deliver changes. A client's
write to a Setpoints node is a request, not a value: it is gated by the safety actor
like an HTTP operator setpoint, audited under the session's user name ("anonymous"
without one), and answered per node:

    accepted                 Good            node shows the applied value
    clamped (limit or rate)  GoodClamped     node shows the applied (clamped) value
    outside signal bounds,   BadOutOfRange   node unchanged
      NaN or +-Inf,
      or refused by safety
    asset OFF                BadInvalidState node unchanged
    not of a numeric type    BadTypeMismatch node unchanged

A write refused here (BadTypeMismatch, or BadOutOfRange for a value outside the signal's
bounds, NaN or +-Inf) is put on the audit, outcome ``refused``, with the user and the
reason, in batches (actors.refusals); one the safety actor refuses is on record already.

A NaN or infinite Double is of the node's type, so Part 4's Bad_TypeMismatch ("not of the
same type as the attribute's value") does not fit it; it lies outside the node's EURange,
for which Part 8 (AnalogItemType) names Bad_OutOfRange.
    safety unreachable       BadCommunicationError  node unchanged (fail closed)

Alarms are OPC UA Part 9 condition events (AlarmConditionType, emitted by the Server
object on each change of an alarm's state in the pushed statuses; fields and the reason
for events rather than a Status/Alarms folder in :mod:`actors.opcua_alarms`).
ConditionRefresh is asyncua's. A client's Acknowledge(EventId, Comment) on a ConditionId
goes to the asset's ``alarm_action`` like ``POST /alarms/{id}/acknowledge``, audited with
the session's user, and is answered:

    acknowledged                         Good            (the next event shows it)
    the user is a viewer                 BadUserAccessDenied
    not the condition's latest EventId   BadEventIdUnknown
    not awaiting acknowledgement         BadConditionBranchAlreadyAcked
    asset or audit unreachable           BadCommunicationError  (nothing changed)
    unknown ConditionId                  BadNodeIdUnknown

Roles (``[opcua] roles``): a user is an operator unless named a viewer, who may read and
subscribe only (a setpoint write answers BadUserAccessDenied and is recorded as
refused); anonymous sessions are operators.

Security (site file ``[opcua]``): ``none`` offers one anonymous, unencrypted endpoint;
``Basic256Sha256_SignAndEncrypt`` offers only that policy, with username and password
checked against the configured hashes, and a self-signed certificate generated at
start into ``certificate_dir``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
from pathlib import Path
from typing import Any

import msgspec
import ray
from asyncua import Server, ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.address_space import AttributeService, MethodService
from asyncua.server.internal_server import InternalServer
from asyncua.server.internal_session import InternalSession
from asyncua.server.user_managers import UserManager
from cryptography.x509.oid import ExtendedKeyUsageOID

from actors.opcua_alarms import ACKNOWLEDGE, AlarmConditions
from actors.opcua_space import AssetNodes, SetpointNode, make_node_id, status_code, twin_datetime
from actors.refusals import RefusalRecorder
from engine.alarm_states import AlarmActionError
from engine.config import OpcUaSettings, SiteConfig
from engine.files import private_directory
from engine.passwords import verify_password
from engine.status import AssetStatus, StatusBatch

ANONYMOUS = "anonymous"
"""Audit user of a write from a session without a user name."""

INTERNAL_USER = User(role=UserRole.Admin)
"""Who a write is by when asyncua calls the service internally (its own default)."""

SESSION_USER = User(role=UserRole.Anonymous)
"""A session's user before it is activated (asyncua's default)."""

STATUS_TIMEOUT_S = 5.0
"""Wall seconds to wait for an asset's status before reporting it unreachable."""

NUMERIC = (ua.VariantType.Double, ua.VariantType.Float, ua.VariantType.SByte,
           ua.VariantType.Byte, ua.VariantType.Int16, ua.VariantType.UInt16,
           ua.VariantType.Int32, ua.VariantType.UInt32, ua.VariantType.Int64,
           ua.VariantType.UInt64)

LOG = logging.getLogger(__name__)


class SiteUsers(UserManager):
    """asyncua user manager: anonymous sessions when the site allows them, otherwise a
    configured user name whose password matches its PBKDF2 hash."""

    def __init__(self, users: dict[str, str], anonymous: bool) -> None:
        self.users = users
        self.anonymous = anonymous

    def get_user(self, iserver, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> User | None:
        if username is None:
            return User(role=UserRole.User) if self.anonymous else None
        hashed = self.users.get(username)
        if hashed is None or password is None or not verify_password(password, hashed):
            return None
        return User(role=UserRole.User, name=username)


class GatedCalls(MethodService):
    """asyncua's method service, with Acknowledge (on a ConditionId) sent to the asset.

    Every other call takes asyncua's usual path."""

    def __init__(self, aspace, acknowledge) -> None:
        super().__init__(aspace)
        self.acknowledge = acknowledge

    async def call(self, methods: list[ua.CallMethodRequest],
                   user: User = INTERNAL_USER) -> list[ua.CallMethodResult]:
        results = []
        for method in methods:
            if method.MethodId == ACKNOWLEDGE:
                results.append(await self.acknowledge(method, user))
            else:
                results += await super().call([method])
        return results


class UserSession(InternalSession):
    """asyncua's session, passing its user to method calls as asyncua passes it to writes."""

    async def call(self, params: list[ua.CallMethodRequest]) -> list[ua.CallMethodResult]:
        service = self.iserver.method_service
        if isinstance(service, GatedCalls):
            return await service.call(params, self.user)
        return await super().call(params)


class SiteServer(InternalServer):
    """asyncua's internal server, whose client sessions are UserSessions, with
    ConditionRefresh bound (a client subscribing late asks for the alarms that need
    attention)."""

    def __init__(self, user_manager: UserManager) -> None:
        super().__init__(user_manager)
        self.bind_condition_methods = True

    def create_session(self, name: str, user: User = SESSION_USER,
                       external: bool = False) -> InternalSession:
        return UserSession(self, self.aspace, self.subscription_service, name, user=user,
                           external=external)


class GatedWrites(AttributeService):
    """asyncua's attribute service, with writes to Setpoints values sent to the safety gate.

    Every other write (other nodes, other attributes) takes asyncua's usual path.
    """

    def __init__(self, aspace, setpoints: dict[ua.NodeId, SetpointNode], write_setpoint) -> None:
        super().__init__(aspace)
        self.setpoints = setpoints
        self.write_setpoint = write_setpoint

    async def write(self, params: ua.WriteParameters,
                    user: User = INTERNAL_USER) -> list[ua.StatusCode]:
        results: dict[int, ua.StatusCode] = {}
        others = []
        for i, request in enumerate(params.NodesToWrite):
            target = self.setpoints.get(request.NodeId)
            if target is None or request.AttributeId != ua.AttributeIds.Value:
                others.append(i)
            else:
                results[i] = await self.write_setpoint(target, request.Value,
                                                       user.name or ANONYMOUS)
        if others:
            rest = await super().write(
                ua.WriteParameters(NodesToWrite=[params.NodesToWrite[i] for i in others]), user)
            results.update(zip(others, rest, strict=True))
        return [results[i] for i in range(len(params.NodesToWrite))]


@ray.remote(num_cpus=0)
class OpcUaActor:
    """Serves one site's assets over OPC UA; see the module docstring."""

    def __init__(self, site: SiteConfig, assets: dict[str, Any], safety: Any) -> None:
        """``assets``: a handle per asset id (actors.directory); ``safety``: the site's
        safety actor, which records the writes refused here."""
        self.site = site
        self.settings: OpcUaSettings = site.opcua
        self.assets = assets
        self.refusals = RefusalRecorder("opcua",
                                        lambda batch: safety.note_refused.remote(batch))
        self.server: Server | None = None
        self.nodes: dict[str, AssetNodes] = {}
        self.conditions = AlarmConditions(0)
        self._alarm_events: Any = None
        self._lock = asyncio.Lock()
        self._refresh: asyncio.Task | None = None
        self._batches = msgspec.msgpack.Decoder(StatusBatch)
        logging.getLogger("asyncua").setLevel(logging.WARNING)

    async def start(self) -> str:
        """Build the address space, start listening and polling; returns the endpoint URL."""
        settings = self.settings
        secure = settings.security != "none"
        server = Server(iserver=SiteServer(SiteUsers(settings.users, anonymous=not secure)))
        await server.init()
        server.set_endpoint(settings.url)
        server.set_server_name(f"TwinLoop {self.site.site.name}")
        application_uri = f"urn:twinloop:{self.site.site.name}"
        await server.set_application_uri(application_uri)
        if secure:
            key, certificate = await _self_signed(Path(settings.certificate_dir), application_uri)
            await server.load_certificate(str(certificate))
            await server.load_private_key(str(key))
            server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
            server.set_identity_tokens([ua.UserNameIdentityToken])
        else:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
            server.set_identity_tokens([ua.AnonymousIdentityToken])

        ns = await server.register_namespace(application_uri)
        assets_folder = await server.nodes.objects.add_folder(make_node_id("Assets", ns),
                                                              ua.QualifiedName("Assets", ns))
        # here, not at the top: a process that only holds this actor's handle (the status
        # board) imports this module to deserialize it, and plants/ brings numba and scipy
        from plants import model_of

        setpoints: dict[ua.NodeId, SetpointNode] = {}
        for asset in self.site.assets:
            nodes = AssetNodes(asset, model_of(asset), ns)
            for result in await server.iserver.isession.add_nodes(
                    nodes.add_nodes_items(assets_folder.nodeid)):
                result.StatusCode.check()
            self.nodes[asset.id] = nodes
            setpoints.update(nodes.setpoints)
        server.iserver.attribute_service = GatedWrites(
            server.iserver.aspace, setpoints, self._write_setpoint)
        server.iserver.method_service = GatedCalls(server.iserver.aspace, self._acknowledge)
        self.conditions = AlarmConditions(ns)
        self._alarm_events = await server.get_event_generator(ua.ObjectIds.AlarmConditionType,
                                                              ua.ObjectIds.Server)
        await server.start()
        self.server = server
        await self._poll()
        self._refresh = asyncio.create_task(self._refresh_loop())
        return settings.url

    async def stop(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
        if self.server is not None:
            await self.server.stop()
            self.server = None

    async def publish_statuses(self, batch: bytes) -> None:
        """Show the statuses of a msgpack StatusBatch, as the status board passes them on.
        The board does not wait for the answer, so a status that cannot be shown is logged
        here (to the demo's log file), and the rest of the batch is still shown."""
        for status in self._batches.decode(batch).statuses:
            try:
                await self.publish(status)
            except Exception:
                LOG.exception("OPC UA: the status of %s (revision %d) could not be shown",
                              status.id, status.revision)

    async def publish(self, status: AssetStatus) -> None:
        """Show one asset's status snapshot; writes only changes, and emits a condition
        event for each alarm whose state changed."""
        if self.server is None:
            return
        async with self._lock:
            nodes = self.nodes[status.id]
            overtaken = status.revision < nodes.revision
            for node, value in nodes.updates(status):
                await self.server.write_attribute_value(node, value)
            if overtaken:
                return
            for condition, event, t in self.conditions.changes(status.alarms, status.time):
                self._alarm_events.event = event
                await self._alarm_events.trigger(twin_datetime(t))
                self.conditions.shown(condition, self._alarm_events.event.EventId.Value)

    def _role(self, user: str) -> str:
        """The OPC UA role of a session's user name (engine.config.OPCUA_ROLES)."""
        return self.settings.roles.get(user, "operator")

    # -- client calls -------------------------------------------------------------------

    async def _acknowledge(self, method: ua.CallMethodRequest, user: User) -> ua.CallMethodResult:
        """Acknowledge(EventId, Comment) on a ConditionId (Part 9, 5.7.3), by the path of
        ``POST /alarms/{id}/acknowledge``: the asset acknowledges and audits it with the
        session's user; operators only."""
        def answer(code: int) -> ua.CallMethodResult:
            return ua.CallMethodResult(StatusCode=status_code(code))

        alarm = self.conditions.alarm_of(method.ObjectId)
        if alarm is None:
            return answer(ua.StatusCodes.BadNodeIdUnknown)
        arguments = [a.Value for a in method.InputArguments or []]
        if len(arguments) != 2:
            return answer(ua.StatusCodes.BadArgumentsMissing if len(arguments) < 2
                          else ua.StatusCodes.BadTooManyArguments)
        event_id, comment = arguments
        if not isinstance(event_id, bytes) or not isinstance(comment, ua.LocalizedText):
            return answer(ua.StatusCodes.BadTypeMismatch)
        name = user.name or ANONYMOUS
        if self._role(name) != "operator":
            return answer(ua.StatusCodes.BadUserAccessDenied)
        if not self.conditions.is_latest(method.ObjectId, event_id):
            return answer(ua.StatusCodes.BadEventIdUnknown)
        asset, alarm_name = alarm
        try:
            await self.assets[asset].alarm_action.remote(alarm_name, "acknowledge", name, None,
                                                         comment.Text or "")
        except AlarmActionError:  # not awaiting acknowledgement
            return answer(ua.StatusCodes.BadConditionBranchAlreadyAcked)
        except Exception:  # the asset or its audit unreachable: nothing changed
            return answer(ua.StatusCodes.BadCommunicationError)
        return answer(ua.StatusCodes.Good)

    # -- client writes ------------------------------------------------------------------

    async def _write_setpoint(self, target: SetpointNode, value: ua.DataValue,
                              user: str) -> ua.StatusCode:
        variant = value.Value
        problem = None
        if variant is None or variant.VariantType not in NUMERIC:
            kind = "no value" if variant is None else f"a {variant.VariantType.name}"
            problem = f"written {kind}, not a number"
        elif value.StatusCode is not None and not value.StatusCode.is_good():
            problem = f"written with status {value.StatusCode.name}, not Good"
        if problem is not None or variant is None:
            self.refusals.refused(target.asset, user, target.signal,
                                  f"BadTypeMismatch: {target.signal} {problem}")
            return status_code(ua.StatusCodes.BadTypeMismatch)
        number = float(variant.Value)
        if self._role(user) != "operator":
            self.refusals.refused(target.asset, user, target.signal,
                                  f"BadUserAccessDenied: {user} is a viewer",
                                  number if math.isfinite(number) else None)
            return status_code(ua.StatusCodes.BadUserAccessDenied)
        asset = self.assets[target.asset]
        try:
            result = await asset.write_setpoints.remote({target.signal: number}, user)
        except ValueError as error:  # outside the signal's engineering bounds: nothing written
            cause = getattr(error, "cause", error)
            self.refusals.refused(target.asset, user, target.signal,
                                  f"BadOutOfRange: {cause.args[0] if cause.args else cause}",
                                  number if math.isfinite(number) else None)
            return status_code(ua.StatusCodes.BadOutOfRange)
        except Exception:  # safety unreachable (fail closed) or asset gone
            return status_code(ua.StatusCodes.BadCommunicationError)
        record = result["records"][0]
        if target.signal not in result["applied"]:
            return status_code(ua.StatusCodes.BadInvalidState if result["mode"] == "OFF"
                               else ua.StatusCodes.BadOutOfRange)
        change = self.nodes[target.asset].written(
            "Setpoints", target.signal, result["applied"][target.signal], result["time"],
            result["revision"])
        if change is not None and self.server is not None:  # None: stopped meanwhile
            async with self._lock:
                await self.server.write_attribute_value(*change)
        return status_code(ua.StatusCodes.GoodClamped if record["outcome"] == "clamped"
                           else ua.StatusCodes.Good)

    # -- polling ------------------------------------------------------------------------

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.refresh_s)
            await self._poll()

    async def _poll(self) -> None:
        """Fetch every asset's status; an unreachable asset shows as unhealthy."""
        async def one(asset_id: str, handle) -> None:
            try:
                status = await asyncio.wait_for(handle.status.remote(), STATUS_TIMEOUT_S)
            except Exception as error:
                await self._unreachable(asset_id, f"asset unreachable ({type(error).__name__})")
                return
            await self.publish(msgspec.convert(status, AssetStatus))

        await asyncio.gather(*(one(a, h) for a, h in self.assets.items()))

    async def _unreachable(self, asset_id: str, error: str) -> None:
        if self.server is None:
            return
        async with self._lock:
            for node, value in self.nodes[asset_id].unreachable(error):
                await self.server.write_attribute_value(node, value)


async def _self_signed(directory: Path, application_uri: str) -> tuple[Path, Path]:
    """The server's private key and self-signed certificate, generated if missing."""
    private_directory(directory)  # it holds the private key
    key, certificate = directory / "server-key.pem", directory / "server-cert.der"
    await setup_self_signed_certificate(
        key, certificate, application_uri, socket.gethostname(),
        [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        {"organizationName": "TwinLoop"})
    return key, certificate
