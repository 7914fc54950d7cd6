"""FastMpcController: the LQR gain from the DARE, agreement with a tightly converged IPOPT
solve (the do-mpc backend), the held plan on failure, hard bounds and rate limits, soft
output limits, economic cost with a tariff, time-varying references, the real-time
iteration, compiled code and its fallback, and selection by site file."""

from __future__ import annotations

import math
import re
from pathlib import Path

import msgspec
import numpy as np
import pytest
import scipy.linalg

from controllers import build_controller, build_estimator
from controllers.mpc_dompc import DoMpcController
from controllers.mpc_fast import FastMpcController
from engine.config import ControllerSettings, OutputLimit, SetpointLimit, parse_site
from engine.loop import ControlLoop
from engine.model import PlantModel
from engine.signals import Signal
from engine.simulation import SimulatedPlant
from plants import asphalt_tank, cstr, model_of, resolve_site

CSTR = ControllerSettings(
    backend="fast", horizon=20, tracking={"C_b": 1.9**2},
    move_suppression={"F": 0.1 * 95**2 / 100**2, "Q_dot": 1e-3 * 8500**2 / 2000**2})
"""do-mpc's CSTR example objective: (C_b - 0.6)^2 plus move suppression 0.1 on F / 100 and
1e-3 on Q_dot / 2000 (do-mpc penalises moves of its scaled inputs), in our span-normalised
weights (C_b span 1.9 mol/l, F span 95 1/h, Q_dot span 8500 kJ/h)."""
TARGET = {"C_b": cstr.C_B_TARGET}


@pytest.fixture(scope="module")
def reactor() -> PlantModel:
    return cstr.build_model()


@pytest.fixture(scope="module")
def start(reactor):
    return (reactor.states.vector(cstr.INITIAL_STATE), reactor.inputs.vector(cstr.INITIAL_INPUTS),
            reactor.disturbances.nominal)


def closed_loop(model, controller, x, u, d, reference, steps, **forecasts):
    """True model in the loop; returns the states, inputs and proposals."""
    states, inputs, proposals = [], [], []
    for k in range(steps):
        proposal = controller.step(k * model.dt, x, u, d, reference, **forecasts)
        u = model.inputs.vector(proposal.setpoints)
        x = model.step(x, u, d)
        states.append(x)
        inputs.append(u)
        proposals.append(proposal)
    return np.array(states), np.array(inputs), proposals


# -- optimality ------------------------------------------------------------------------------


def linear_plant() -> tuple[PlantModel, np.ndarray, np.ndarray]:
    """An unstable 3-state, 2-input linear plant with outputs y = [x; u], unbounded, and
    its exact discrete (A, B): RK4 of a linear ODE is a linear map."""
    Ac = np.array([[0.02, 0.3, 0.0], [-0.1, -0.05, 0.2], [0.0, 0.1, -0.3]])
    Bc = np.array([[0.0, 0.1], [0.5, 0.0], [0.0, 0.4]])
    states = [Signal(f"x{i}", "1", 0.0) for i in range(3)]
    inputs = [Signal(f"u{j}", "1", 0.0) for j in range(2)]
    outputs = [Signal(f"y_x{i}", "1", 0.0) for i in range(3)] + \
        [Signal(f"y_u{j}", "1", 0.0) for j in range(2)]

    def dynamics(x, u, d, p):
        return {f"x{i}": sum(Ac[i, a] * x[f"x{a}"] for a in range(3))
                + sum(Bc[i, b] * u[f"u{b}"] for b in range(2)) for i in range(3)}

    def output(x, u, d, p):
        return {**{f"y_x{i}": x[f"x{i}"] for i in range(3)},
                **{f"y_u{j}": u[f"u{j}"] for j in range(2)}}

    model = PlantModel.build("linear", states=states, inputs=inputs, disturbances=[],
                             parameters=[], outputs=outputs, dynamics=dynamics,
                             output=output, dt=1.0)
    A = np.column_stack([model.step(e, np.zeros(2), []) for e in np.eye(3)])
    B = np.column_stack([model.step(np.zeros(3), e, []) for e in np.eye(2)])
    return model, A, B


def test_unconstrained_linear_mpc_with_the_dare_terminal_weight_is_lqr():
    """min sum_{k<N} x'Qx + u'Ru + x_N' P x_N with P from the DARE is the infinite-horizon
    LQR problem, whose first move is u_0 = -K x_0 with K = (R + B'PB)^-1 B'PA, for any
    horizon. Weights: tracking on y = [x; u] with references 0 (spans are 1 for
    unbounded signals with nominal 0), no move suppression."""
    model, A, B = linear_plant()
    q, r = np.array([1.0, 2.0, 0.5]), np.array([0.3, 0.7])
    P = scipy.linalg.solve_discrete_are(A, B, np.diag(q), np.diag(r))
    K = np.linalg.solve(np.diag(r) + B.T @ P @ B, B.T @ P @ A)
    names = model.outputs.names
    settings = ControllerSettings(
        backend="fast", horizon=4, tracking=dict(zip(names, [*q, *r], strict=True)),
        move_suppression={"u0": 0.0, "u1": 0.0}, tolerance=1e-12)
    controller = FastMpcController(model, settings, {}, terminal_weight=P,
                                   terminal_state=np.zeros(3))
    for x in (np.array([1.0, -2.0, 0.5]), np.array([-30.0, 4.0, 12.0])):
        proposal = controller.step(0.0, x, np.zeros(2), np.zeros(0), dict.fromkeys(names, 0.0))
        assert proposal.status == "converged"
        u0 = model.inputs.vector(proposal.setpoints)
        np.testing.assert_allclose(u0, -K @ x, rtol=1e-8, atol=1e-8 * np.abs(K @ x).max())


def test_first_move_matches_tightly_converged_ipopt_along_the_cstr_closed_loop(reactor, start):
    """do-mpc's CSTR example (without its terminal term and state bounds, which neither
    backend models here): at every 5th state of the fast backend's closed loop, IPOPT
    (do-mpc, tol 1e-12) solves the same problem from a cold start; the fast backend's
    first move (warm-started, SQP to the default step of 1e-6 spans) agrees to 1e-6 of
    each input's span."""
    x, u, d = start
    reference = DoMpcController(reactor, CSTR, {},
                                ipopt_options={"tol": 1e-12, "acceptable_tol": 1e-12})
    fast = FastMpcController(reactor, CSTR, {})
    span = reactor.inputs.upper - reactor.inputs.lower
    worst = 0.0
    for k in range(30):
        proposal = fast.step(k * reactor.dt, x, u, d, TARGET)
        if k % 5 == 0:
            ipopt = reference.step(k * reactor.dt, x, u, d, TARGET)
            assert ipopt.status == "Solve_Succeeded"
            difference = (reactor.inputs.vector(proposal.setpoints)
                          - reactor.inputs.vector(ipopt.setpoints))
            worst = max(worst, float(np.max(np.abs(difference) / span)))
        u = reactor.inputs.vector(proposal.setpoints)
        x = reactor.step(x, u, d)
    assert worst < 1e-6
    assert abs(x[1] - cstr.C_B_TARGET) < 0.01  # and the loop reaches the target


@pytest.mark.parametrize("qp_solver", ["osqp", "qpoases"])
def test_other_qp_solvers_give_the_same_first_move(reactor, start, qp_solver):
    x, u, d = start
    settings = msgspec.structs.replace(CSTR, tolerance=1e-7)
    qrqp = FastMpcController(reactor, settings, {}).step(0.0, x, u, d, TARGET)
    other = FastMpcController(reactor, msgspec.structs.replace(settings, qp_solver=qp_solver),
                              {}).step(0.0, x, u, d, TARGET)
    span = reactor.inputs.upper - reactor.inputs.lower
    difference = reactor.inputs.vector(other.setpoints) - reactor.inputs.vector(qrqp.setpoints)
    assert np.max(np.abs(difference) / span) < 1e-5


def test_real_time_iteration_tracks_like_the_converged_controller(reactor, start):
    """One SQP iteration per step from the shifted solution (the cold first step
    converges): after the transient the closed loop sits on the target like the
    converged one."""
    x, u, d = start
    rti = FastMpcController(reactor, msgspec.structs.replace(CSTR, real_time_iteration=True), {})
    states, _, proposals = closed_loop(reactor, rti, x, u, d, TARGET, 60)
    assert proposals[0].status == "converged"
    assert {p.status for p in proposals[1:]} <= {"real-time iteration", "converged"}
    assert "real-time iteration" in {p.status for p in proposals}
    assert rti.iterations == 1
    assert np.all(np.abs(states[-10:, 1] - cstr.C_B_TARGET) < 2e-3)


# -- constraints -----------------------------------------------------------------------------


def test_input_bounds_and_rate_limits_hold_at_every_step(reactor, start):
    """A hard rate limit on both inputs and a tighter bound on F: every proposed move
    respects both, and the limits are active (the unconstrained loop moves faster)."""
    x, u, d = start
    limits = {"F": SetpointLimit(lower=5.0, upper=40.0, max_rate=0.05),
              "Q_dot": SetpointLimit(max_rate=2.0)}
    controller = FastMpcController(reactor, CSTR, limits)
    _, inputs, proposals = closed_loop(reactor, controller, x, u, d, {"C_b": 0.7}, 40)
    moves = np.abs(np.diff(np.vstack([u, inputs]), axis=0))
    assert np.all(moves[:, 0] <= 0.05 * reactor.dt + 1e-9)
    assert np.all(moves[:, 1] <= 2.0 * reactor.dt + 1e-9)
    assert np.all((inputs[:, 0] >= 5.0) & (inputs[:, 0] <= 40.0))
    assert np.all((inputs[:, 1] >= -8500.0) & (inputs[:, 1] <= 0.0))
    assert moves.max(axis=0)[1] > 0.99 * 2.0 * reactor.dt  # the rate limit was reached
    assert all(p.status == "converged" for p in proposals)
    free = FastMpcController(reactor, CSTR, {})
    _, free_inputs, _ = closed_loop(reactor, free, x, u, d, {"C_b": 0.7}, 40)
    assert np.abs(np.diff(free_inputs[:, 1])).max() > 2.0 * reactor.dt


def test_applied_input_outside_the_bounds_moves_back_inside(reactor, start):
    x, _, d = start
    controller = FastMpcController(
        reactor, CSTR, {"F": SetpointLimit(lower=10.0, upper=50.0, max_rate=0.01)})
    proposal = controller.step(0.0, x, np.array([80.0, -6000.0]), d, TARGET)
    assert proposal.status == "converged"
    assert 50.0 - 0.01 * reactor.dt - 1e-9 <= proposal.setpoints["F"] <= 50.0


def test_soft_output_limit_engages_and_an_unreachable_one_still_solves(reactor, start):
    """Raising C_b to 1 mol/l heats the reactor (predicted T_R peaks above 137 degC);
    a soft upper limit of 135 degC keeps the plan's peak within 0.1 K of it. A limit
    the plant cannot meet (T_R <= 60 degC, 74 K below now) costs slack, not a failure."""
    x, u, d = start
    free = FastMpcController(reactor, CSTR, {}).step(0.0, x, u, d, {"C_b": 1.0})
    limited_settings = msgspec.structs.replace(
        CSTR, output_limits={"T_R": OutputLimit(upper=135.0, penalty=1e4)})
    limited = FastMpcController(reactor, limited_settings, {}).step(0.0, x, u, d, {"C_b": 1.0})
    assert max(free.predicted["T_R"]) > 137.0
    assert max(limited.predicted["T_R"]) < 135.1
    assert limited.setpoints != free.setpoints
    impossible = msgspec.structs.replace(CSTR, output_limits={"T_R": OutputLimit(upper=60.0)})
    proposal = FastMpcController(reactor, impossible, {}).step(0.0, x, u, d, TARGET)
    assert proposal.status == "converged"
    assert proposal.setpoints["Q_dot"] == pytest.approx(-8500.0, abs=1.0)  # full cooling


# -- failure ---------------------------------------------------------------------------------


@pytest.mark.parametrize("state, status", [
    (np.array([math.nan, 0.5, 134.14, 130.0]), "non-finite C_a"),
    (np.array([0.8, 0.5, 1e300, 130.0]), r"(QP solvers? .* gave up|non-finite iterate)"),
])
def test_failure_holds_the_last_good_plan_shifted(reactor, start, state, status):
    """A NaN estimate, or one that overflows the model (exp of 1e300 degC), is never
    proposed: the last good plan one step on is, inside the bounds, saying so; the next
    good estimate solves again."""
    x, u, d = start
    controller = FastMpcController(reactor, CSTR, {})
    good = controller.step(0.0, x, u, d, TARGET)
    held = controller.step(18.0, state, u, d, TARGET)
    assert re.fullmatch(f"failed: {status}", held.status), held.status
    assert re.fullmatch(rf"solver failed \({status}\): holding last good plan", held.reason)
    plan = good.predicted
    assert held.predicted == {name: values[1:] + values[-1:] for name, values in plan.items()}
    assert all(math.isfinite(v) for v in held.setpoints.values())
    assert 5.0 <= held.setpoints["F"] <= 100.0 and -8500.0 <= held.setpoints["Q_dot"] <= 0.0
    assert held.setpoints != good.setpoints
    again = controller.step(36.0, x, u, d, TARGET)
    assert again.status == "converged"


def test_a_restored_checkpoint_resumes_the_plan_and_the_warm_start(reactor, start):
    """A controller rebuilt from another's checkpoint, stored as JSON (an asset actor
    restarted after a SIGKILL), warm-starts the same SQP: same iterations, same move to
    1e-9; and on a failed first solve it holds the restored plan, saying so."""
    x, u, d = start
    original = FastMpcController(reactor, CSTR, {})
    original.step(0.0, x, u, d, TARGET)
    data = msgspec.json.decode(msgspec.json.encode(original.checkpoint()))
    resumed = FastMpcController(reactor, CSTR, {})
    resumed.restore(data)
    expected = original.step(18.0, x, u, d, TARGET)
    moved = resumed.step(18.0, x, u, d, TARGET)
    assert resumed.iterations == original.iterations
    assert moved.setpoints == pytest.approx(expected.setpoints, rel=1e-9)
    held = FastMpcController(reactor, CSTR, {})
    held.restore(data)
    failed = held.step(18.0, np.full_like(x, np.nan), u, d, TARGET)
    assert failed.reason.startswith("solver failed") and "holding last good plan" in failed.reason
    assert failed.predicted == {name: values[1:] + values[-1:]
                                for name, values in original_plan(reactor, data).items()}


def original_plan(model, data) -> dict[str, list[float]]:
    """The predicted outputs of a checkpoint's plan, by output name."""
    outputs = np.asarray(data["plan_outputs"])
    return {name: outputs[:, i].tolist() for i, name in enumerate(model.outputs.names)}


def test_failure_without_a_plan_holds_the_applied_inputs_within_bounds(reactor):
    controller = FastMpcController(reactor, CSTR, {})
    held = controller.step(0.0, np.full(4, math.nan), np.array([150.0, -6000.0]),
                           np.zeros(0), TARGET)
    assert held.setpoints == {"F": 100.0, "Q_dot": -6000.0}
    assert held.status.startswith("failed")
    assert "no plan yet" in held.reason


# -- objectives and forecasts ----------------------------------------------------------------


def test_reason_is_human_readable(reactor, start):
    x, u, d = start
    proposal = FastMpcController(reactor, CSTR, {}).step(0.0, x, u, d, TARGET)
    assert re.fullmatch(r"C_b 0\.5 mol/l -> 0\.6 mol/l \(predicted 0\.\d+ mol/l in 6 min\): "
                        r"F 30\.0 -> \d+\.\d 1/h, Q_dot -6000\.0 -> -\d+\.\d kJ/h",
                        proposal.reason), proposal.reason


def test_time_varying_reference_is_followed_over_the_horizon(reactor, start):
    """A reference that steps from 0.5 to 0.7 mol/l after 10 steps: the first move
    already differs from the constant reference's (the plan sees the step coming) and the
    plan ends higher."""
    x, u, d = start
    controller = FastMpcController(reactor, CSTR, {})
    steady = controller.step(0.0, x, u, d, {"C_b": 0.5})
    ahead = FastMpcController(reactor, CSTR, {}).step(0.0, x, u, d,
                                                      {"C_b": [0.5] * 10 + [0.7]})
    assert ahead.predicted["C_b"][-1] > steady.predicted["C_b"][-1] + 0.05
    assert ahead.setpoints != steady.setpoints
    with pytest.raises(ValueError, match=r"reference\['C_b'\].*1 to 20"):
        controller.step(0.0, x, u, d, {"C_b": [0.6] * 21})
    with pytest.raises(ValueError, match=r"reference\['C_b'\].*finite"):
        controller.step(0.0, x, u, d, {"C_b": [0.6, math.nan]})


def test_economic_cost_defers_cooling_to_the_cheap_tariff(reactor, start):
    """Cooling the jacket costs energy (economic weight -0.01 on Q_dot <= 0, so more
    cooling costs more) at a tariff three times the flat one for the first 10 steps and
    a tenth of it after: the first move cools less than under the flat tariff, and the
    tracking of C_b still holds the plan to 0.6 mol/l at the horizon's end."""
    x, u, d = start
    settings = msgspec.structs.replace(CSTR, economic={"Q_dot": -0.01})

    def first(tariff):
        controller = FastMpcController(reactor, settings, {})
        return controller.step(0.0, x, u, d, TARGET, prices={"Q_dot": tariff})

    flat, peak = first(1.0), first([3.0] * 10 + [0.3])
    assert flat.status == peak.status == "converged"
    assert peak.setpoints["Q_dot"] > flat.setpoints["Q_dot"] + 1000.0
    assert peak.predicted["C_b"][-1] == pytest.approx(0.6, abs=0.01)
    with pytest.raises(ValueError, match="F.*carry no economic weight"):
        FastMpcController(reactor, settings, {}).step(0.0, x, u, d, TARGET, prices={"F": 1.0})


def test_heat_priced_tank_converges_every_step_instead_of_cycling():
    """A tank 5 K under a soft floor of 160 °C with hot oil priced (economic weight 10 on
    m_oil, twice the price in the middle of the horizon) and nothing tracked: the optimum
    is set by the coil's curvature (the heat a kg of oil brings falls as the flow
    rises). Gauss-Newton SQP with full steps never converged here: it used its 20
    iterations at every step and the applied hot-oil flow flipped between 2.87 and
    0.47 kg/s from step to step. With the exact Hessian and the merit line search every
    step converges within the default budget and the flow settles."""
    model = asphalt_tank.build_model()
    settings = msgspec.structs.replace(
        asphalt_tank.DEFAULTS.controller, backend="fast", hessian="exact",
        economic={"m_oil": 10.0}, tracking={"T_bulk": 0.0, "T_return": 0.0},
        output_limits={"T_bulk": OutputLimit(lower=433.15, penalty=1000.0)})
    controller = FastMpcController(model, settings, asphalt_tank.DEFAULTS.limits)
    x, u, d = np.array([428.0, 440.0]), model.inputs.nominal, model.disturbances.nominal
    flows = []
    for k in range(6):
        proposal = controller.step(k * model.dt, x, u, d, {},
                                   prices={"m_oil": [1.0] * 10 + [2.0] * 10 + [1.0]})
        assert proposal.status == "converged", (k, proposal.status)
        assert controller.iterations <= settings.max_iterations
        u = model.inputs.vector(proposal.setpoints)
        x = model.step(x, u, d)
        flows.append(u[0])
    assert np.ptp(flows[1:]) < 0.05  # kg/s: settled, no cycle


# -- code generation and selection -----------------------------------------------------------


def test_compiled_code_gives_the_same_move_and_a_missing_compiler_falls_back(
        reactor, start, tmp_path, monkeypatch):
    x, u, d = start
    monkeypatch.setenv("TWINLOOP_CACHE_DIR", str(tmp_path))
    settings = msgspec.structs.replace(CSTR, horizon=5, codegen=True)
    compiled = FastMpcController(reactor, settings, {})
    assert compiled.compiled and list(tmp_path.glob("mpc_sqp_step_*.so"))
    interpreted = FastMpcController(reactor, msgspec.structs.replace(settings, codegen=False), {})
    a = compiled.step(0.0, x, u, d, TARGET).setpoints
    b = interpreted.step(0.0, x, u, d, TARGET).setpoints
    assert a == pytest.approx(b, rel=1e-12)

    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("TWINLOOP_CACHE_DIR", str(tmp_path / "empty"))
    fallback = FastMpcController(reactor, settings, {})
    assert not fallback.compiled
    assert "code generation failed, running interpreted" in fallback.compile_note
    assert fallback.step(0.0, x, u, d, TARGET).setpoints == pytest.approx(b, rel=1e-12)


def test_site_file_selects_the_fast_backend_per_asset():
    site = resolve_site(parse_site(b"""
        [site]
        name = "t"
        [[assets]]
        id = "tank-fast"
        kind = "asphalt_tank"
        [assets.controller]
        backend = "fast"
        horizon = 10
        tracking = { T_bulk = 100.0, T_return = 0.0 }
        output_limits = { T_return = { upper = 470.0 } }
        real_time_iteration = true
        [[assets]]
        id = "tank-dompc"
        kind = "asphalt_tank"
    """))
    fast, reference = (build_controller(model_of(a), a.controller, a.limits)
                       for a in site.assets)
    assert (fast.backend, reference.backend) == ("fast", "do-mpc")
    assert isinstance(fast, FastMpcController) and fast.real_time_iteration


@pytest.mark.parametrize("settings, named", [
    (ControllerSettings(output_limits={"level": OutputLimit(upper=1.0)}), "level"),
    (ControllerSettings(output_limits={"T_R": OutputLimit(lower=2.0, upper=1.0)}), "T_R"),
    (ControllerSettings(output_limits={"T_R": OutputLimit(upper=1.0, penalty=0.0)}), "penalty"),
    (ControllerSettings(economic={"power": 1.0}), "power"),
    (ControllerSettings(qp_solver="gurobi"), "gurobi"),
    (ControllerSettings(max_iterations=0), "max_iterations"),
])
def test_bad_settings_raise_naming_the_setting(reactor, settings, named):
    with pytest.raises(ValueError, match=named):
        build_controller(reactor, msgspec.structs.replace(settings, backend="fast"), {})


def test_do_mpc_backend_refuses_fast_only_settings(reactor):
    with pytest.raises(ValueError, match="output_limits: backend 'do-mpc' does not read it"):
        build_controller(reactor, ControllerSettings(
            output_limits={"T_R": OutputLimit(upper=135.0)}), {})


def test_disturbance_forecast_is_anticipated():
    """An asphalt tank at its target: a forecast that the hot-oil supply falls from
    523 K to 423 K (below the bulk) in half an hour makes the controller open the hot oil
    now and pre-heat the tank before the oil can no longer heat it; held at today's
    supply temperature it does neither."""
    model = asphalt_tank.build_model()
    settings = msgspec.structs.replace(asphalt_tank.DEFAULTS.controller, backend="fast")
    limits = asphalt_tank.DEFAULTS.limits
    x, u, d = np.array([433.15, 440.0]), model.inputs.nominal, model.disturbances.nominal
    reference = {"T_bulk": 433.15}
    steady = FastMpcController(model, settings, limits).step(0.0, x, u, d, reference)
    drop = FastMpcController(model, settings, limits).step(
        0.0, x, u, d, reference, disturbances={"T_supply": [523.15] * 15 + [423.15]})
    assert steady.status == drop.status == "converged"
    assert drop.setpoints["m_oil"] > steady.setpoints["m_oil"] + 0.02
    assert max(drop.predicted["T_bulk"][:15]) > max(steady.predicted["T_bulk"][:15]) + 0.02
    with pytest.raises(ValueError, match="level"):
        FastMpcController(model, settings, limits).step(0.0, x, u, d, reference,
                                                        disturbances={"level": 1.0})


def test_twin_loop_with_the_fast_backend_settles_a_mismatched_noisy_tank():
    """The two-tank site's tank-01 with its controller switched to "fast" in the site
    file, run by ControlLoop (EKF + fast MPC) against a SimulatedPlant with a fouled coil,
    worse insulation and measurement noise, with the setpoint rate limit applied as the
    safety policy would: the true bulk temperature ends within 0.5 K of the reference
    after 12 h, from 10 K below, and no move exceeds 0.02 kg/s per second."""
    site = Path(__file__).parents[1] / "sites" / "two_tanks.toml"
    text = site.read_text().replace('inputs = { m_oil = 0.6 }', 'inputs = { m_oil = 0.6 }\n'
                                    'controller = { backend = "fast", horizon = 30, '
                                    'tracking = { T_bulk = 100.0, T_return = 0.0 }, '
                                    'move_suppression = { m_oil = 0.1 } }', 1)
    asset = resolve_site(parse_site(text)).assets[0]
    model = model_of(asset)
    controller = build_controller(model, asset.controller, asset.limits)
    assert controller.backend == "fast"
    loop = ControlLoop(asset.id, model, build_estimator(model, asset.estimator), controller,
                       x0=asset.initial, u0=asset.inputs, reference=asset.reference)
    plant = SimulatedPlant(asset.id, model, asset.simulation, x0=asset.initial,
                           u0=asset.inputs)
    period, applied = asset.period_s, [asset.inputs["m_oil"]]
    for _ in range(int(12 * 3600 / period)):
        plant.advance(period)
        loop.observe(plant.measure())
        proposal = loop.propose(plant.t)
        assert not proposal.status.startswith("failed"), proposal.reason
        loop.applied(proposal.setpoints)
        plant.apply(proposal.setpoints)
        applied.append(proposal.setpoints["m_oil"])
    assert plant.truth()["states"]["T_bulk"] == pytest.approx(433.15, abs=0.5)
    assert np.abs(np.diff(applied)).max() <= 0.02 * period + 1e-9
