"""OpcUaActor: the site's OPC UA server (asyncua), running in an async Ray actor's event loop.

    shards --StatusBatch--> status board --StatusBatch (each tick instant, each operator
                                           action)--> OpcUaActor --> nodes
    OpcUaActor --status poll (every opcua.refresh_s)--------> assets
    SCADA client --Write Setpoints/<input>--> asset.write_setpoints(values, user)
                                              --> SafetyActor (gated, audited) --> result

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

A NaN or infinite Double is of the node's type, so Part 4's Bad_TypeMismatch ("not of the
same type as the attribute's value") does not fit it; it lies outside the node's EURange,
for which Part 8 (AnalogItemType) names Bad_OutOfRange.
    safety unreachable       BadCommunicationError  node unchanged (fail closed)

Security (site file ``[opcua]``): ``none`` offers one anonymous, unencrypted endpoint;
``Basic256Sha256_SignAndEncrypt`` offers only that policy, with username and password
checked against the configured hashes, and a self-signed certificate generated at
start into ``certificate_dir``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path
from typing import Any

import msgspec
import ray
from asyncua import Server, ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.address_space import AttributeService
from asyncua.server.user_managers import UserManager
from cryptography.x509.oid import ExtendedKeyUsageOID

from actors.opcua_space import AssetNodes, SetpointNode, make_node_id, status_code
from engine.config import OpcUaSettings, SiteConfig
from engine.files import private_directory
from engine.passwords import verify_password
from engine.status import AssetStatus, StatusBatch
from plants import model_of

ANONYMOUS = "anonymous"
"""Audit user of a write from a session without a user name."""

INTERNAL_USER = User(role=UserRole.Admin)
"""Who a write is by when asyncua calls the service internally (its own default)."""

STATUS_TIMEOUT_S = 5.0
"""Wall seconds to wait for an asset's status before reporting it unreachable."""

NUMERIC = (ua.VariantType.Double, ua.VariantType.Float, ua.VariantType.SByte,
           ua.VariantType.Byte, ua.VariantType.Int16, ua.VariantType.UInt16,
           ua.VariantType.Int32, ua.VariantType.UInt32, ua.VariantType.Int64,
           ua.VariantType.UInt64)


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

    def __init__(self, site: SiteConfig, assets: dict[str, Any]) -> None:
        self.site = site
        self.settings: OpcUaSettings = site.opcua
        self.assets = assets
        self.server: Server | None = None
        self.nodes: dict[str, AssetNodes] = {}
        self._lock = asyncio.Lock()
        self._refresh: asyncio.Task | None = None
        self._batches = msgspec.msgpack.Decoder(StatusBatch)
        logging.getLogger("asyncua").setLevel(logging.WARNING)

    async def start(self) -> str:
        """Build the address space, start listening and polling; returns the endpoint URL."""
        settings = self.settings
        secure = settings.security != "none"
        server = Server(user_manager=SiteUsers(settings.users, anonymous=not secure))
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
        """Show the statuses of a msgpack StatusBatch, as the status board passes them on."""
        for status in self._batches.decode(batch).statuses:
            await self.publish(status)

    async def publish(self, status: AssetStatus) -> None:
        """Show one asset's status snapshot; writes only changes."""
        if self.server is None:
            return
        async with self._lock:
            for node, value in self.nodes[status.id].updates(status):
                await self.server.write_attribute_value(node, value)

    # -- client writes ------------------------------------------------------------------

    async def _write_setpoint(self, target: SetpointNode, value: ua.DataValue,
                              user: str) -> ua.StatusCode:
        variant = value.Value
        if (variant is None or variant.VariantType not in NUMERIC
                or (value.StatusCode is not None and not value.StatusCode.is_good())):
            return status_code(ua.StatusCodes.BadTypeMismatch)
        asset = self.assets[target.asset]
        try:
            result = await asset.write_setpoints.remote({target.signal: float(variant.Value)}, user)
        except ValueError:  # outside the signal's engineering bounds: nothing was written
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
