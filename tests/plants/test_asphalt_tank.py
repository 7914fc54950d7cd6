"""The single asphalt tank against first principles (PHYSICS.md section 3)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from plants.asphalt_tank import CELSIUS, build_model

MODEL = build_model()
P = MODEL.parameters.nominal
NAMES = MODEL.parameters.names


def param(name):
    return P[NAMES.index(name)]


def coil_duty(T, flow, T_sup):
    """Q = m c (T_sup - T)(1 - exp(-UA/(m c))): effectiveness-NTU for a well-mixed tank."""
    capacity = flow * param("c_oil")
    return capacity * (T_sup - T) * (1 - math.exp(-param("UA_coil") / capacity))


def test_bulk_temperature_rate_is_net_heat_over_heat_capacity():
    """dT/dt = (Q_coil - UA_loss (T - T_amb)) / (m c_p), c_p by Cragoe:
    (1.685 + 0.00339 T[°C]) / sqrt(SG) kJ/kgK. Tolerance 1e-9 relative (same formula)."""
    T, flow, T_sup, T_amb = 423.15, 3.0, 523.15, 283.15
    x = np.array([T, 450.0])
    rate = MODEL.dynamics(0, x, [flow], [T_sup, T_amb])[0]
    c_p = 1e3 * (1.685 + 0.00339 * (T - CELSIUS)) / math.sqrt(param("SG"))
    expected = (coil_duty(T, flow, T_sup) - param("UA_loss") * (T - T_amb)) / (param("mass") * c_p)
    assert rate == pytest.approx(expected, rel=1e-9)


def test_return_temperature_settles_at_the_coil_outlet_formula():
    """T_ret follows T_ss = T + (T_sup - T) exp(-UA/(m_oil c_oil)) (PHYSICS.md) through a
    first-order lag tau = M_coil/m_oil. The bulk warms meanwhile, so T_ss ramps with slope
    s = (1 - exp(-NTU)) dT/dt, and a first-order lag trails a ramp by exactly tau s.
    After 12 residence times the transient is gone: tolerance 0.01 K."""
    flow, T_sup = 2.0, 523.15
    x = np.array([433.15, 500.0])
    for _ in range(100):
        x = MODEL.step(x, [flow], [T_sup, 283.15])
    T = x[0]
    passthrough = math.exp(-param("UA_coil") / (flow * param("c_oil")))
    steady = T + (T_sup - T) * passthrough
    ramp = (1 - passthrough) * MODEL.dynamics(0, x, [flow], [T_sup, 283.15])[0]
    tau = param("M_coil") / flow
    assert x[1] == pytest.approx(steady - tau * ramp, abs=0.01)


def test_energy_balance_closes_over_a_day():
    """Integrated coil duty minus losses equals the bulk's enthalpy rise, to 0.5 %
    (the return-temperature state does not store bulk heat)."""
    x = np.array([413.15, 420.0])
    u, d = np.array([4.0]), np.array([523.15, 283.15])
    dt, heat_in, heat_out = 60.0, 0.0, 0.0
    model = build_model(dt=dt)
    enthalpy = lambda T: param("mass") * 1e3 * (1.685 * (T - CELSIUS) + 0.00339 / 2 * (T - CELSIUS) ** 2) / math.sqrt(param("SG"))  # noqa: E731
    start = enthalpy(x[0])
    for _ in range(24 * 60):
        T0 = x[0]
        x = model.step(x, u, d)
        T_mid = 0.5 * (T0 + x[0])
        heat_in += coil_duty(T_mid, u[0], d[0]) * dt
        heat_out += param("UA_loss") * (T_mid - d[1]) * dt
    assert enthalpy(x[0]) - start == pytest.approx(heat_in - heat_out, rel=5e-3)


def test_nominal_point_is_close_to_steady():
    """At nominal flow the tank drifts less than 0.1 K per hour."""
    x, u, d, p = MODEL.steady_input_vectors()
    assert abs(MODEL.dynamics(0, x, u, d, p)[0]) * 3600 < 0.1


def test_storage_above_200_C_is_outside_the_bulk_temperature_bounds():
    with pytest.raises(ValueError, match="above its upper bound 473.15 K"):
        MODEL.states["T_bulk"].check(200.5 + CELSIUS)
