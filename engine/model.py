"""PlantModel: the structure of a plant as data, shared by simulation, estimation and control.

A plant is described by signal specs and two CasADi functions with named inputs and
outputs, in the argument order used everywhere in TwinLoop:

    dx/dt = f(x, u, d, p)        continuous dynamics        (states per second)
    y     = h(x, u, d, p)        measured outputs           (output units)

and a discretisation: the explicit Runge–Kutta 4 step over ``dt`` split in
``substeps`` equal sub-intervals,

    x[k+1] = F(x[k], u[k], d[k], p, dt).

A PlantModel holds structure, never mutable state. ``plants/<kind>.py`` builds one from
plain parameters, so any actor can rebuild it locally (CasADi Functions also pickle).
The parameters enter f and h as the input p, so models that differ only in their
parameter values have the same :attr:`PlantModel.structure` and share every problem
built on it (controllers.casadi_compile.shared).
"""

from __future__ import annotations

import copy
import functools
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import casadi as ca
import msgspec
import numpy as np

from engine.signals import Signal, SignalSet

SymbolMap = Mapping[str, ca.SX]
"""Name -> symbolic scalar, as handed to a plant's dynamics and output functions."""

_ARGS = ["x", "u", "d", "p"]


@dataclass(frozen=True)
class PlantModel:
    """Signal specs, continuous dynamics ``f``, outputs ``h`` and their RK4 discretisation.

    Attributes:
        kind: asset kind this model describes (``"asphalt_tank"``).
        states, inputs, disturbances, parameters, outputs: the signal specs; the
            parameters' nominal values are the model's parameter values.
        f: CasADi Function ``(x, u, d, p) -> (dxdt)``.
        h: CasADi Function ``(x, u, d, p) -> (y)``.
        dt: sample period of the discretisation, s (the controller's step).
        substeps: RK4 sub-intervals per ``dt``.
        F: CasADi Function ``(x, u, d, p, dt) -> (x_next)``, derived from ``f``: one SX
            expression, f's inlined 4 * substeps times (fast to evaluate).
    """

    kind: str
    states: SignalSet
    inputs: SignalSet
    disturbances: SignalSet
    parameters: SignalSet
    outputs: SignalSet
    f: ca.Function
    h: ca.Function
    dt: float
    substeps: int = 4
    F: ca.Function = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.dt > 0:
            raise ValueError(f"plant {self.kind!r}: dt must be positive, got {self.dt}")
        if self.substeps < 1:
            raise ValueError(f"plant {self.kind!r}: substeps must be >= 1, got {self.substeps}")
        object.__setattr__(self, "F", _rk4(self.f, self.substeps))

    @classmethod
    def build(
        cls,
        kind: str,
        *,
        states: list[Signal],
        inputs: list[Signal],
        disturbances: list[Signal],
        parameters: list[Signal],
        outputs: list[Signal],
        dynamics: Callable[[SymbolMap, SymbolMap, SymbolMap, SymbolMap], Mapping[str, ca.SX]],
        output: Callable[[SymbolMap, SymbolMap, SymbolMap, SymbolMap], Mapping[str, ca.SX]],
        dt: float,
        substeps: int = 4,
    ) -> PlantModel:
        """Build a model from physics written with named symbols.

        ``dynamics(x, u, d, p)`` returns ``{state name: dx/dt expression}`` for every
        state; ``output(x, u, d, p)`` returns ``{output name: expression}`` for every
        output. Each argument maps signal names to CasADi SX scalars.
        """
        sets = [SignalSet(s) for s in (states, inputs, disturbances, parameters, outputs)]
        xs, us, ds, ps, ys = sets
        vectors = [ca.SX.sym(name, len(group)) for name, group in zip(_ARGS, sets[:4], strict=True)]
        named = [
            {sig.name: vec[i] for i, sig in enumerate(group)}
            for vec, group in zip(vectors, sets[:4], strict=True)
        ]
        rates = dynamics(*named)
        values = output(*named)
        _require_all(kind, "dynamics", xs.names, rates)
        _require_all(kind, "output", ys.names, values)
        dxdt = ca.vertcat(*[rates[name] for name in xs.names])
        y = ca.vertcat(*[values[name] for name in ys.names])
        f = ca.Function("f", vectors, [dxdt], _ARGS, ["dxdt"])
        h = ca.Function("h", vectors, [y], _ARGS, ["y"])
        return cls(kind, xs, us, ds, ps, ys, f, h, dt, substeps)

    # -- numeric evaluation, (t, x, u, d, p) argument order --------------------------------

    def dynamics(self, t: float, x, u, d, p=None) -> np.ndarray:
        """dx/dt at (x, u, d, p), in state units per second. Time-invariant: t is unused."""
        return _flat(self.f(x, u, d, self._p(p)))

    def output(self, t: float, x, u, d, p=None) -> np.ndarray:
        """Measured outputs y = h(x, u, d, p), in output units."""
        return _flat(self.h(x, u, d, self._p(p)))

    def step(self, x, u, d, p=None, dt: float | None = None) -> np.ndarray:
        """State after ``dt`` seconds (default: the model's ``dt``) with inputs held."""
        return _flat(self.F(x, u, d, self._p(p), self.dt if dt is None else dt))

    @functools.cached_property
    def structure(self) -> str:
        """A digest (hex SHA-256) of everything but the parameter values: kind, dt,
        substeps, f and h (CasADi serialisation) and the signal specs, the parameters'
        without their nominal values. Equal for models that differ only in parameter
        values; the key of the problems built on a model."""
        digest = hashlib.sha256(f"{self.kind}|{self.dt!r}|{self.substeps}".encode())
        for function in (self.f, self.h):
            digest.update(function.serialize().encode())
        for group in (self.states, self.inputs, self.disturbances, self.outputs):
            digest.update(msgspec.msgpack.encode(list(group)))
        digest.update(msgspec.msgpack.encode([msgspec.structs.replace(s, nominal=0.0)
                                           for s in self.parameters]))
        return digest.hexdigest()

    def with_parameters(self, values: Mapping[str, float]) -> PlantModel:
        """The same model with some parameters' values (their nominal values) replaced;
        it shares this model's f, h, F and structure (parameters are an input of each).

        Unknown names and values outside a parameter's bounds raise ValueError."""
        try:
            checked = self.parameters.check(values)
        except KeyError as error:
            raise ValueError(f"plant {self.kind!r}: {error.args[0]}") from None
        updated = SignalSet(
            msgspec.structs.replace(s, nominal=checked[s.name]) if s.name in checked else s
            for s in self.parameters
        )
        model = copy.copy(self)
        object.__setattr__(model, "parameters", updated)
        return model

    @functools.cached_property
    def F_calls(self) -> ca.Function:
        """The RK4 step of :attr:`F` as an MX Function whose 4 * ``substeps`` stages call
        ``f`` instead of inlining it: the same arithmetic, (x, u, d, p, dt) -> (x_next).
        A problem built on it (do-mpc's NLP) differentiates f's expression, not the
        whole inlined step: the derivatives IPOPT needs of the 10-tank terminal's
        15-step NLP hold about 0.6 million SX instructions instead of 7 million."""
        return _rk4(self.f, self.substeps, ca.MX)

    def _p(self, p) -> np.ndarray:
        return self.parameters.nominal if p is None else p

    def steady_input_vectors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Nominal (x, u, d, p) vectors: the usual starting point."""
        return (self.states.nominal, self.inputs.nominal, self.disturbances.nominal,
                self.parameters.nominal)


def _rk4(f: ca.Function, substeps: int,
         symbol: type[ca.SX] | type[ca.MX] = ca.SX) -> ca.Function:
    """Classic RK4: k1 = f(x), k2 = f(x + h k1/2), k3 = f(x + h k2/2), k4 = f(x + h k3),
    x+ = x + h (k1 + 2 k2 + 2 k3 + k4)/6, repeated ``substeps`` times with h = dt/substeps.
    On ``ca.SX`` symbols f is inlined; on ``ca.MX`` each stage is a call to f."""
    # Any: casadi's stubs type Function's arguments for SX or MX, not their union
    x: Any = symbol.sym("x", f.size1_in(0))
    u: Any = symbol.sym("u", f.size1_in(1))
    d: Any = symbol.sym("d", f.size1_in(2))
    p: Any = symbol.sym("p", f.size1_in(3))
    dt: Any = symbol.sym("dt")
    h = dt / substeps
    xk = x
    for _ in range(substeps):
        k1 = f(xk, u, d, p)
        k2 = f(xk + h / 2 * k1, u, d, p)
        k3 = f(xk + h / 2 * k2, u, d, p)
        k4 = f(xk + h * k3, u, d, p)
        xk = xk + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return ca.Function("F", [x, u, d, p, dt], [xk], [*_ARGS, "dt"], ["x_next"])


def _require_all(kind: str, what: str, names: tuple[str, ...], given: Mapping[str, object]) -> None:
    missing = [n for n in names if n not in given]
    extra = [n for n in given if n not in names]
    if missing or extra:
        raise ValueError(
            f"plant {kind!r}: {what} must give exactly {list(names)}; "
            f"missing {missing}, unexpected {extra}"
        )


def _flat(value) -> np.ndarray:
    return np.asarray(value, dtype=float).ravel()
