"""The OPC UA address space of one site, and the values it shows; no Ray.

    Objects/Assets/<asset id>/Measurements/<output>   AnalogItemType, Double, read-only
                            /Estimates/<state>       AnalogItemType, Double, read-only
                            /Setpoints/<input>       AnalogItemType, Double, writable
                                                     (inputs with safety limits)
                            /Status/mode             String
                            /Status/healthy          Boolean
                            /Status/errors           String[]

Node ids are strings in the site's namespace (``urn:twinloop:<site>``):
``<asset>.<Folder>.<signal>``, e.g. ``ns=2;s=tank-01.Setpoints.m_oil``. Each analog
item carries the properties EURange (the signal's engineering bounds, SI) and
EngineeringUnits (UNECE Rec. 20 code where the SI unit string has one, else a
DisplayName with UnitId -1). SourceTimestamp is the twin's time of the value;
measurements older than the asset's ``max_measurement_age_s`` are
``UncertainLastUsableValue``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from asyncua import ua

from engine.config import AssetConfig
from engine.model import PlantModel
from engine.signals import Signal
from engine.status import AssetStatus

UNECE_NAMESPACE = "http://www.opcfoundation.org/UA/units/un/cefact"
"""Namespace of EUInformation whose UnitId is a UNECE Rec. 20 common code (OPC 10000-8)."""

UNECE_CODES = {
    "1": ("C62", "one"), "m": ("MTR", "metre"), "K": ("KEL", "kelvin"),
    "Pa": ("PAL", "pascal"), "m/s": ("MTS", "metre per second"), "kg": ("KGM", "kilogram"),
    "m2": ("MTK", "square metre"), "m3": ("MTQ", "cubic metre"),
    "m3/s": ("MQS", "cubic metre per second"), "kg/s": ("KGS", "kilogram per second"),
    "W/K": ("D52", "watt per kelvin"), "W/(m2 K)": ("D55", "watt per square metre kelvin"),
    "W/(m K)": ("D53", "watt per metre kelvin"), "Ohm": ("OHM", "ohm"), "s": ("SEC", "second"),
    "kg/m3": ("KMQ", "kilogram per cubic metre"), "W": ("WTT", "watt"),
    "rad/s": ("2A", "radian per second"), "V": ("VLT", "volt"), "A": ("AMP", "ampere"),
    "N": ("NEW", "newton"), "J/kg": ("J2", "joule per kilogram"), "J/K": ("JE", "joule per kelvin"),
    "J/(kg K)": ("B11", "joule per kilogram kelvin"), "1/s": ("C97", "reciprocal second"),
    "1/min": ("C94", "reciprocal minute"), "ppm": ("59", "part per million"),
    "m2/s": ("S4", "square metre per second"),
    "m2 K/W": ("D19", "square metre kelvin per watt"),
    "m3/(s Pa)": ("N45", "cubic metre per second pascal"),
}
"""SI unit strings of the plants (``^`` dropped) -> UNECE Rec. 20 common code and name."""

FOLDERS = ("Measurements", "Estimates", "Setpoints", "Status")
STALE = ua.StatusCodes.UncertainLastUsableValue
NO_DATA = ua.StatusCodes.BadWaitingForInitialData


def unit_id(code: str) -> int:
    """OPC 10000-8 UnitId of a UNECE common code: its (up to 3) ASCII bytes, big-endian."""
    value = 0
    for char in code:
        value = (value << 8) | ord(char)
    return value


def eu_information(unit: str) -> ua.EUInformation:
    """EngineeringUnits of an SI unit string: UNECE where known, else the symbol alone."""
    known = UNECE_CODES.get(unit.replace("^", ""))
    if known is None:
        return ua.EUInformation(NamespaceUri="urn:twinloop:units", UnitId=-1,
                                DisplayName=ua.LocalizedText(unit),
                                Description=ua.LocalizedText(unit))
    code, name = known
    return ua.EUInformation(NamespaceUri=UNECE_NAMESPACE, UnitId=unit_id(code),
                            DisplayName=ua.LocalizedText(unit), Description=ua.LocalizedText(name))


def twin_datetime(t: float) -> datetime:
    """A twin time (UNIX seconds) as an OPC UA DateTime."""
    return datetime.fromtimestamp(t, UTC)


@dataclass(frozen=True)
class SetpointNode:
    """What a write to one Setpoints node addresses."""

    asset: str
    signal: str


def make_node_id(identifier: str | int, namespace: int = 0) -> ua.NodeId:
    """``ua.NodeId(identifier, namespace)``. asyncua annotates NodeId's fields with its own
    marker classes (ua.String, ua.Int16, ...) but takes plain str and int, as its code does."""
    return ua.NodeId(identifier, namespace)  # type: ignore[arg-type]


def _number(value: float | None) -> float:
    """A status value as a Double (None, a NaN the status encodes as null: NaN)."""
    return math.nan if value is None else value


def _time(value: float | None, otherwise: float) -> float:
    return otherwise if value is None else value


def status_code(code: int) -> ua.StatusCode:
    """``ua.StatusCode(code)`` for a ua.StatusCodes constant: those are plain ints, where
    asyncua annotates the field ua.UInt32."""
    return ua.StatusCode(code)  # type: ignore[arg-type]


class AssetNodes:
    """Node ids of one asset, and which values changed since they were last written.

    ``updates(status)`` turns an asset's status snapshot (AssetShard.status) into the
    DataValues of the nodes whose value or status code changed, and remembers them; ``written``
    records a value written by another path (a client's setpoint write). Snapshots carry the
    asset's revision: one older than a revision already shown (a poll overtaken by a
    push or a write) changes nothing.
    """

    def __init__(self, asset: AssetConfig, model: PlantModel, ns: int) -> None:
        self.asset = asset
        self.model = model
        self.ns = ns
        self.max_age = asset.max_measurement_age_s
        self._last: dict[ua.NodeId, tuple[Any, int]] = {}
        self._time = 0.0
        self.revision = -1

    def node_id(self, folder: str, name: str) -> ua.NodeId:
        return make_node_id(f"{self.asset.id}.{folder}.{name}", self.ns)

    @property
    def setpoints(self) -> dict[ua.NodeId, SetpointNode]:
        return {self.node_id("Setpoints", name): SetpointNode(self.asset.id, name)
                for name in self.model.inputs.names if name in self.asset.limits}

    def add_nodes_items(self, assets_folder: ua.NodeId) -> list[ua.AddNodesItem]:
        """Every node of this asset, parents before children, for one AddNodes call."""
        asset_id = self.asset.id
        asset_node = make_node_id(asset_id, self.ns)
        items = [_object(asset_node, self.asset.id, assets_folder, ua.ObjectIds.BaseObjectType,
                         ua.ObjectIds.Organizes, self.ns)]
        for folder in FOLDERS:
            items.append(_object(make_node_id(f"{asset_id}.{folder}", self.ns), folder, asset_node,
                                 ua.ObjectIds.FolderType, ua.ObjectIds.HasComponent, self.ns))
        groups = (("Measurements", self.model.outputs, ()),
                  ("Estimates", self.model.states, ()),
                  ("Setpoints", self.model.inputs, tuple(self.asset.limits)))
        for folder, signals, writable in groups:
            parent = make_node_id(f"{asset_id}.{folder}", self.ns)
            for signal in signals:
                items += _analog_item(self.node_id(folder, signal.name), signal, parent, self.ns,
                                      writable=signal.name in writable)
        status = make_node_id(f"{asset_id}.Status", self.ns)
        items.append(_variable(self.node_id("Status", "mode"), "mode", status, self.ns,
                               ua.Variant("", ua.VariantType.String), ua.ObjectIds.String))
        items.append(_variable(self.node_id("Status", "healthy"), "healthy", status, self.ns,
                               ua.Variant(False, ua.VariantType.Boolean), ua.ObjectIds.Boolean))
        items.append(_variable(self.node_id("Status", "errors"), "errors", status, self.ns,
                               ua.Variant([], ua.VariantType.String), ua.ObjectIds.String,
                               rank=ua.ValueRank.OneDimension))
        return items

    def updates(self, status: AssetStatus) -> list[tuple[ua.NodeId, ua.DataValue]]:
        """DataValues of the nodes whose value or status changed in ``status``."""
        if status.revision < self.revision:
            return []
        self.revision = status.revision
        t = self._time = status.time
        age = status.measurement_age_s
        stale = age is not None and self.max_age is not None and age > self.max_age
        out = []
        for name in self.model.outputs.names:
            entry = status.measurement.get(name)
            if entry is None:
                out.append(self._change("Measurements", name, math.nan, t, NO_DATA))
            else:
                out.append(self._change("Measurements", name, _number(entry.value),
                                        _time(entry.time, t),
                                        STALE if stale else ua.StatusCodes.Good))
        for name, estimated in status.estimate.items():
            out.append(self._change("Estimates", name, _number(estimated.value), t))
        for name, setpoint in status.setpoints.items():
            out.append(self._change("Setpoints", name, _number(setpoint.value),
                                    _time(setpoint.time, t)))
        out.append(self._change("Status", "mode", status.mode.value, t,
                                kind=ua.VariantType.String))
        out.append(self._change("Status", "healthy", status.healthy, t,
                                kind=ua.VariantType.Boolean))
        out.append(self._change("Status", "errors", list(status.errors), t,
                                kind=ua.VariantType.String))
        return [change for change in out if change is not None]

    def unreachable(self, error: str) -> list[tuple[ua.NodeId, ua.DataValue]]:
        """Status changes when the asset's actor does not answer."""
        out = [self._change("Status", "healthy", False, self._time, kind=ua.VariantType.Boolean),
               self._change("Status", "errors", [error], self._time, kind=ua.VariantType.String)]
        return [change for change in out if change is not None]

    def written(self, folder: str, name: str, value: float, t: float,
                revision: int) -> tuple[ua.NodeId, ua.DataValue] | None:
        """A value the asset reported at ``revision`` by another path than a snapshot."""
        if revision < self.revision:
            return None
        self.revision = revision
        return self._change(folder, name, value, t)

    def _change(self, folder: str, name: str, value: Any, t: float,
                code: int = ua.StatusCodes.Good, kind: ua.VariantType = ua.VariantType.Double,
                ) -> tuple[ua.NodeId, ua.DataValue] | None:
        node = self.node_id(folder, name)
        key = (_comparable(value), code)
        if self._last.get(node) == key:
            return None
        self._last[node] = key
        # asyncua annotates the timestamps with its datetime subclass ua.DateTime; it takes
        # (and itself passes) plain datetimes
        return node, ua.DataValue(ua.Variant(value, kind), status_code(code),
                                  SourceTimestamp=twin_datetime(t),  # type: ignore[arg-type]
                                  ServerTimestamp=datetime.now(UTC))  # type: ignore[arg-type]


def _comparable(value: Any) -> Any:
    """NaN equals NaN for change detection; lists become tuples."""
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return tuple(value) if isinstance(value, list) else value


def _object(node: ua.NodeId, name: str, parent: ua.NodeId, type_id: int, reference: int,
            ns: int) -> ua.AddNodesItem:
    attrs = ua.ObjectAttributes(DisplayName=ua.LocalizedText(name),
                                Description=ua.LocalizedText(name))
    return ua.AddNodesItem(
        ParentNodeId=parent, ReferenceTypeId=make_node_id(reference),
        RequestedNewNodeId=node, BrowseName=ua.QualifiedName(name, ns),
        NodeClass=ua.NodeClass.Object, NodeAttributes=attrs, TypeDefinition=make_node_id(type_id))


def _variable(node: ua.NodeId, name: str, parent: ua.NodeId, ns: int, value: ua.Variant,
              data_type: int, *, type_id: int = ua.ObjectIds.BaseDataVariableType,
              reference: int = ua.ObjectIds.HasComponent, writable: bool = False,
              rank: int = ua.ValueRank.Scalar, description: str = "") -> ua.AddNodesItem:
    access = ua.AccessLevel.CurrentRead.mask
    if writable:
        access |= ua.AccessLevel.CurrentWrite.mask
    attrs = ua.VariableAttributes(
        DisplayName=ua.LocalizedText(name), Description=ua.LocalizedText(description or name),
        Value=value, DataType=make_node_id(data_type), ValueRank=rank,
        # None encodes a null array (a scalar has no dimensions); asyncua's annotation
        # leaves out the None its encoder handles
        ArrayDimensions=(
            [0] if rank == ua.ValueRank.OneDimension else None),  # type: ignore[arg-type]
        AccessLevel=access, UserAccessLevel=access, Historizing=False)
    return ua.AddNodesItem(
        ParentNodeId=parent, ReferenceTypeId=make_node_id(reference),
        RequestedNewNodeId=node, BrowseName=ua.QualifiedName(name, ns),
        NodeClass=ua.NodeClass.Variable, NodeAttributes=attrs, TypeDefinition=make_node_id(type_id))


def _analog_item(node: ua.NodeId, signal: Signal, parent: ua.NodeId, ns: int,
                 writable: bool) -> list[ua.AddNodesItem]:
    """An AnalogItemType variable with its EURange and EngineeringUnits properties."""
    item = _variable(node, signal.name, parent, ns, ua.Variant(math.nan, ua.VariantType.Double),
                     ua.ObjectIds.Double, type_id=ua.ObjectIds.AnalogItemType, writable=writable,
                     description=f"{signal.description} [{signal.unit}]".strip())
    name = str(node.Identifier)
    eu_range = _variable(make_node_id(f"{name}.EURange", ns), "EURange", node, 0,
                         ua.Variant(ua.Range(Low=signal.lower, High=signal.upper)),
                         ua.ObjectIds.Range, type_id=ua.ObjectIds.PropertyType,
                         reference=ua.ObjectIds.HasProperty)
    units = _variable(make_node_id(f"{name}.EngineeringUnits", ns), "EngineeringUnits",
                      node, 0, ua.Variant(eu_information(signal.unit)), ua.ObjectIds.EUInformation,
                      type_id=ua.ObjectIds.PropertyType, reference=ua.ObjectIds.HasProperty)
    return [item, eu_range, units]
