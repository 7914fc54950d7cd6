"""Nominal points that are steady states, solved on a model's own equations.

A plant's nominal states, inputs and outputs are where its twin starts, its filter
linearises and its controller is warm-started; if nominal inputs do not hold the nominal
state the twin drifts from the first tick. ``at_steady_state`` frees some states and
inputs and solves residual(dx/dt, y) = 0 for them by Newton's method from their nominal
values, then writes the root back as the nominal values (and the outputs at it).

Newton iterates on each free input through u = lower + (upper - lower) / (1 + exp(-z)),
so no step can leave the input's bounds (a coil valve opening below 0 sends the oil flow
negative and the coil's NTU to -inf: the untransformed iteration died there for a
one-tank terminal).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import casadi as ca
import msgspec
import numpy as np

from engine.model import PlantModel
from engine.signals import SignalSet

Residual = Callable[[ca.SX, ca.SX], ca.SX]
"""(dx/dt, y) at the unknowns -> residuals, one per unknown, each scaled so that
``abstol`` is a tolerance on all of them."""


def at_steady_state(model: PlantModel, free_states: Sequence[str], free_inputs: Sequence[str],
                    residual: Residual, abstol: float) -> PlantModel:
    """``model`` with the nominal values of ``free_states`` and ``free_inputs`` replaced
    by the root of ``residual`` (Newton, |residual| <= ``abstol``), the other signals at
    their nominal values, and nominal outputs h at that root.

    ``abstol`` must lie above the residual's rounding noise (the residuals' scale times
    1e-16 or so) or Newton never declares success. Free inputs need finite bounds.
    Raises ValueError, naming the model, if Newton fails or a solved state is outside its
    signal's bounds.
    """
    x0, u0, d0, p0 = model.steady_input_vectors()
    states = [model.states.index(name) for name in free_states]
    inputs = [model.inputs.index(name) for name in free_inputs]
    lower, upper = model.inputs.lower[inputs], model.inputs.upper[inputs]
    unknowns = ca.SX.sym("z", len(states) + len(inputs))
    x, u = ca.SX(x0), ca.SX(u0)
    x[states] = unknowns[: len(states)]
    u[inputs] = lower + (upper - lower) / (1 + ca.exp(-unknowns[len(states):]))
    equations = ca.Function("g", [unknowns],
                            [residual(model.f(x, u, d0, p0), model.h(x, u, d0, p0))])
    solve = ca.rootfinder("steady", "newton", equations,
                          {"abstol": abstol, "max_iter": 100, "error_on_fail": False})
    share = (u0[inputs] - lower) / (upper - lower)
    guess = np.concatenate([x0[states], np.log(share / (1 - share))])
    root = np.asarray(solve(guess), dtype=float).ravel()
    if not np.all(np.abs(np.asarray(equations(root), dtype=float)) <= abstol):
        raise ValueError(f"plant {model.kind!r}: Newton found no steady state for "
                         f"{', '.join([*free_states, *free_inputs])} from their nominal "
                         "values")
    x0[states] = root[: len(states)]
    u0[inputs] = lower + (upper - lower) / (1 + np.exp(-root[len(states):]))
    try:
        for index in states:
            model.states[index].check(x0[index])
        for index in inputs:
            model.inputs[index].check(u0[index])
    except ValueError as error:
        raise ValueError(f"plant {model.kind!r}: the nominal steady state needs {error}") from None
    y0 = model.output(0.0, x0, u0, d0, p0)
    return dataclasses.replace(model, states=_renominal(model.states, x0),
                               inputs=_renominal(model.inputs, u0),
                               outputs=_renominal(model.outputs, y0))


def _renominal(signals: SignalSet, values) -> SignalSet:
    return SignalSet(msgspec.structs.replace(s, nominal=float(v))
                     for s, v in zip(signals, values, strict=True))
