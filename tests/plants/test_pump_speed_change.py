"""The what-if of a pump speed change against the affinity laws (PHYSICS.md section 5:
Q ∝ N, H ∝ N^2, P ∝ N^3 at homologous points) and the model's NPSH and bearing physics."""

from __future__ import annotations

import pytest

from plants.centrifugal_pump import GRAVITY, build_model, efficiency
from plants.pump_speed_change import speed_change

MODEL = build_model(dt=30.0)
X0, U0, D0, P0 = MODEL.steady_input_vectors()
RATED = MODEL.parameters["rated_speed"].nominal


def param(name):
    return MODEL.parameters[name].nominal


def efficiency_by_affinity(flow, speed, efficiency_factor=1.0):
    """eta = k_eta eta_r(Q / s) from the datasheet fit alone, s = N / N_r."""
    coefficients = [param(f"efficiency_{k}") for k in (1, 2, 3)]
    return efficiency_factor * efficiency(coefficients, flow / (speed / RATED)
                                          / param("design_flow"))


def test_on_a_friction_system_speed_scales_flow_head_and_power_and_keeps_efficiency():
    """With no static head the system curve is a parabola of homologous points: 90 % speed
    gives 90 % flow, 81 % head, 72.9 % power and the same efficiency (1e-6 relative)."""
    d = MODEL.disturbances.vector({"p_delivery": D0[MODEL.disturbances.index("p_source")],
                                   "suction_level": param("delivery_elevation")})
    change = speed_change(MODEL, X0, U0, d, 0.9 * RATED)
    before, after = change.before, change.after
    assert after.flow / before.flow == pytest.approx(0.9, rel=1e-6)
    assert after.head / before.head == pytest.approx(0.81, rel=1e-6)
    assert after.power / before.power == pytest.approx(0.729, rel=1e-6)
    assert after.efficiency == pytest.approx(before.efficiency, rel=1e-6)


@pytest.mark.parametrize(("present", "ratio"), [(1.0, 0.85), (1.0, 1.05), (0.85, 0.95)])
def test_on_the_pilot_line_the_changes_follow_the_affinity_laws(present, ratio):
    """Against the pilot line's static head, a speed change moves the flow with the speed,
    the NPSH margin against it (NPSH_3 grows as s^2 and with flow, NPSH_a falls with flow),
    and the efficiency to the datasheet curve at the new homologous flow Q/s (1e-7: the
    model smooths the flow near zero), i.e.
    toward or away from best efficiency; bearing temperature and vibration follow the loss
    power and the speed. From rated speed (at best efficiency) either way loses efficiency;
    from 85 % (below best efficiency flow) a rise to 95 % gains it."""
    u = MODEL.inputs.vector({"speed": present * RATED}, default=U0)
    change = speed_change(MODEL, X0, u, D0, ratio * RATED)
    before, after = change.before, change.after
    faster = ratio > present
    assert (after.flow > before.flow) == faster
    assert (after.npsh_margin < before.npsh_margin) == faster
    assert (after.T_bearing > before.T_bearing) == faster
    assert (after.vibration > before.vibration) == faster
    assert after.efficiency == pytest.approx(efficiency_by_affinity(after.flow, after.speed),
                                             rel=1e-7)
    closer_to_best = abs(after.bep_ratio - 1) < abs(before.bep_ratio - 1)
    assert closer_to_best == (present < 1.0)
    assert (after.efficiency > before.efficiency) == closer_to_best


def test_the_new_point_is_steady_with_the_bearing_at_its_heat_balance():
    """After the change, dQ/dt = 0 and the bearing sits at T_amb + P_loss / G_b with
    P_loss = P_elec eta_motor - rho g Q H (1e-6 K); it gets there with C_b / G_b = 1800 s."""
    change = speed_change(MODEL, X0, U0, D0, 0.9 * RATED)
    after = change.after
    shaft = after.power * param("motor_efficiency")
    loss = shaft - param("density") * GRAVITY * after.flow * after.head
    ambient = MODEL.disturbances.mapping(D0)["T_ambient"]
    assert after.T_bearing == pytest.approx(ambient + loss / param("bearing_conductance"),
                                            abs=1e-6)
    x = MODEL.states.vector({"flow": after.flow, "T_bearing": after.T_bearing}, default=X0)
    u = MODEL.inputs.vector({"speed": 0.9 * RATED}, default=U0)
    assert abs(MODEL.dynamics(0.0, x, u, D0)[MODEL.states.index("flow")]) < 1e-9
    assert change.bearing_time_constant_s == pytest.approx(1800.0)


def test_a_worn_pump_loses_its_efficiency_factor_at_the_new_point():
    """The what-if runs on the pump's present state: with k_eta = 0.9 the new point's
    efficiency is 0.9 of the curve's, and the findings at the new point flag the loss."""
    worn = MODEL.states.vector({"efficiency_factor": 0.9}, default=X0)
    change = speed_change(MODEL, worn, U0, D0, 0.95 * RATED)
    assert change.after.efficiency == pytest.approx(
        efficiency_by_affinity(change.after.flow, change.after.speed, 0.9), rel=1e-7)
    findings = {f.check: f for f in change.findings}
    assert findings["efficiency_loss"].alarm and not findings["vibration"].alarm


def test_a_speed_outside_the_drive_range_names_the_signal():
    with pytest.raises(ValueError, match=r"signal 'speed': .* above its upper bound"):
        speed_change(MODEL, X0, U0, D0, 1.2 * RATED)
