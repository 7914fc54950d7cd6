"""ExtendedKalmanFilter: Riccati steady state on linear plants, convergence and NIS
consistency on the asphalt tank, partial measurements, and input checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg

from controllers import build_estimator
from controllers.ekf import ExtendedKalmanFilter
from engine.config import EstimatorSettings
from engine.model import PlantModel
from engine.signals import Signal
from plants.asphalt_tank import build_model


def random_walk(process_std: float, measurement_std: float, dt: float) -> PlantModel:
    """dx/dt = w (white noise, std per sqrt(s)), y = x + v."""
    return PlantModel.build(
        "random_walk",
        states=[Signal("level", "m", 0.0, std=process_std)],
        inputs=[], disturbances=[], parameters=[],
        outputs=[Signal("level", "m", 0.0, std=measurement_std)],
        dynamics=lambda x, u, d, p: {"level": 0 * x["level"]},
        output=lambda x, u, d, p: {"level": x["level"]},
        dt=dt,
    )


def oscillator(dt: float) -> PlantModel:
    """Damped mass-spring: dpos/dt = vel, dvel/dt = -k pos - c vel + force; y = pos."""
    return PlantModel.build(
        "oscillator",
        states=[Signal("position", "m", 0.0, std=0.05), Signal("velocity", "m/s", 0.0, std=0.2)],
        inputs=[Signal("force", "N/kg", 0.0)],
        disturbances=[],
        parameters=[Signal("k", "1/s^2", 4.0), Signal("c", "1/s", 0.5)],
        outputs=[Signal("position", "m", 0.0, std=0.1)],
        dynamics=lambda x, u, d, p: {
            "position": x["velocity"],
            "velocity": -p["k"] * x["position"] - p["c"] * x["velocity"] + u["force"],
        },
        output=lambda x, u, d, p: {"position": x["position"]},
        dt=dt, substeps=4,
    )


def posterior_from_prior(prior, C, R):
    """P+ = P- - P- C' (C P- C' + R)^-1 C P-."""
    S = C @ prior @ C.T + R
    return prior - prior @ C.T @ np.linalg.solve(S, C @ prior)


def test_random_walk_covariance_reaches_the_scalar_riccati_solution():
    """Scalar random walk, q = sigma_w^2 dt, r = sigma_v^2: the steady prior variance
    solves P = P - P^2/(P + r) + q, i.e. P = (q + sqrt(q^2 + 4 q r))/2, and the posterior
    is P r/(P + r) (first principles). Tolerance 1e-9 relative after 200 steps."""
    dt, q_std, r_std = 2.0, 0.03, 0.5
    model = random_walk(q_std, r_std, dt)
    ekf = ExtendedKalmanFilter(model, EstimatorSettings())
    state = ekf.initial_state(np.zeros(1))
    rng = np.random.default_rng(1)
    for _ in range(200):
        state = ekf.step(state, np.zeros(0), np.zeros(0), {"level": rng.normal(0, r_std)}, dt)
    q, r = q_std**2 * dt, r_std**2
    prior = (q + math.sqrt(q * q + 4 * q * r)) / 2
    assert state.P[0, 0] == pytest.approx(prior * r / (prior + r), rel=1e-9)


def test_oscillator_covariance_reaches_the_discrete_riccati_solution():
    """Linear 2-state plant: the EKF is the Kalman filter of x+ = Phi x, y = C x with
    Phi = (I + hA + (hA)^2/2 + (hA)^3/6 + (hA)^4/24)^n the RK4 transition (h = dt/n),
    Qd = diag(std^2) dt. After 400 steps its covariance equals the posterior of
    scipy.linalg.solve_discrete_are(Phi', C', Qd, R) (dual form) to 1e-8 relative."""
    dt = 0.5
    model = oscillator(dt)
    ekf = ExtendedKalmanFilter(model, EstimatorSettings())
    A = np.array([[0.0, 1.0], [-4.0, -0.5]])
    hA = A * dt / 4
    step = np.eye(2) + hA + hA @ hA / 2 + hA @ hA @ hA / 6 + hA @ hA @ hA @ hA / 24
    Phi = np.linalg.matrix_power(step, 4)
    C = np.array([[1.0, 0.0]])
    Qd = np.diag([0.05**2, 0.2**2]) * dt
    R = np.array([[0.1**2]])
    prior = scipy.linalg.solve_discrete_are(Phi.T, C.T, Qd, R)

    state = ekf.initial_state(np.zeros(2))
    rng = np.random.default_rng(2)
    for _ in range(400):
        state = ekf.step(state, np.zeros(1), np.zeros(0), {"position": rng.normal(0, 0.1)}, dt)
    np.testing.assert_allclose(state.P, posterior_from_prior(prior, C, R), rtol=1e-8)


def simulate_tank(steps: int, x_true0, x_estimate0, seed: int):
    """Truth: the tank's RK4 step plus process noise N(0, Q dt), measurements with
    noise N(0, R), the same noise the filter assumes. Yields (truth, state) per step."""
    model = build_model()
    ekf = ExtendedKalmanFilter(model, EstimatorSettings())
    rng = np.random.default_rng(seed)
    u, d = model.inputs.nominal, model.disturbances.nominal
    process_std = model.states.std * math.sqrt(model.dt)
    truth = np.array(x_true0, float)
    state = ekf.initial_state(np.array(x_estimate0, float))
    for _ in range(steps):
        truth = model.step(truth, u, d) + rng.normal(0.0, process_std)
        y = model.output(0.0, truth, u, d) + rng.normal(0.0, model.outputs.std)
        state = ekf.step(state, u, d, model.outputs.mapping(y), model.dt)
        yield truth, state


def test_tank_estimate_converges_from_a_wrong_start_within_three_sigma():
    """Start 3 K off in T_bulk and -10 K in T_return (about 0.7 and 2.3 initial sigma).
    After 300 steps of 120 s the error stays within 3 reported sigma: at the last step
    and in at least 97 % of the last 200 steps (Gaussian: 99.7 %). The T_bulk error falls
    below 0.3 K, a tenth of the initial offset."""
    nominal = np.array([433.15, 440.0])
    run = list(simulate_tank(300, nominal, nominal + [3.0, -10.0], seed=3))
    errors = np.array([state.x - truth for truth, state in run])
    sigmas = np.array([np.sqrt(np.diag(state.P)) for _, state in run])
    inside = np.abs(errors[-200:]) <= 3 * sigmas[-200:]
    assert inside.mean(axis=0) == pytest.approx(1.0, abs=0.03)
    assert np.all(np.abs(errors[-1]) <= 3 * sigmas[-1])
    assert abs(errors[-1, 0]) < 0.3


def test_tank_nis_averages_the_number_of_outputs():
    """On a consistent filter NIS is chi-square with n_y = 2 degrees of freedom: its mean
    is 2 (Bar-Shalom, Li & Kirubarajan 2001, section 5.4). Over 2000 steps the mean has a
    std of about sqrt(4/2000) = 0.045; tolerance 0.2."""
    nominal = np.array([433.15, 440.0])
    nis = [state.nis for _, state in simulate_tank(2050, nominal, nominal, seed=4)][50:]
    assert np.mean(nis) == pytest.approx(2.0, abs=0.2)


def test_default_initial_covariance_follows_the_settings_docstring():
    """P0 = (1 % of nominal)^2, at least (process std x sqrt(3600 s))^2."""
    model = build_model()
    tank = ExtendedKalmanFilter(model, EstimatorSettings())
    np.testing.assert_allclose(np.diag(tank.initial_state(np.zeros(2)).P),
                               (0.01 * model.states.nominal) ** 2, rtol=1e-12)
    walk = ExtendedKalmanFilter(random_walk(0.03, 0.5, 1.0), EstimatorSettings())
    assert walk.initial_state(np.zeros(1)).P[0, 0] == pytest.approx((0.03 * 60) ** 2)


def test_partial_measurement_corrects_with_the_measured_output_only():
    """Correction only (dt = 0) with T_bulk measured, P0 = diag(1, 4) K^2, R = 0.2^2 K^2:
    the scalar Kalman update gives gain 1/(1 + 0.04), posterior variance 0.04/1.04 K^2,
    NIS = nu^2/1.04; the uncorrelated T_return keeps its value and variance."""
    model = build_model()
    ekf = ExtendedKalmanFilter(model, EstimatorSettings(initial_std={"T_bulk": 1.0,
                                                                    "T_return": 2.0}))
    before = ekf.initial_state(model.states.nominal)
    after = ekf.step(before, model.inputs.nominal, model.disturbances.nominal,
                     {"T_bulk": 433.65}, 0.0)
    gain = 1.0 / 1.04
    assert after.x[0] == pytest.approx(433.15 + gain * 0.5, abs=1e-12)
    assert after.x[1] == model.states["T_return"].nominal
    np.testing.assert_allclose(after.P, [[0.04 / 1.04, 0.0], [0.0, 4.0]], atol=1e-12)
    np.testing.assert_allclose(after.innovation, [0.5, 0.0], atol=1e-12)
    assert after.nis == pytest.approx(0.25 / 1.04, rel=1e-12)


def test_measurement_std_override_changes_the_gain():
    """measurement_std T_bulk = 1 K gives R = 1 K^2: with P0 = 1 K^2 the gain is 1/2."""
    model = build_model()
    ekf = ExtendedKalmanFilter(model, EstimatorSettings(initial_std={"T_bulk": 1.0},
                                                        measurement_std={"T_bulk": 1.0}))
    state = ekf.step(ekf.initial_state(model.states.nominal), model.inputs.nominal,
                     model.disturbances.nominal, {"T_bulk": 434.15}, 0.0)
    assert state.x[0] == pytest.approx(433.65, abs=1e-12)


def test_empty_measurement_only_predicts():
    """Random walk without a measurement: x unchanged, P grows by q dt exactly."""
    ekf = ExtendedKalmanFilter(random_walk(0.03, 0.5, 1.0), EstimatorSettings())
    before = ekf.initial_state(np.array([2.0]))
    after = ekf.step(before, np.zeros(0), np.zeros(0), {}, 10.0)
    assert after.x[0] == 2.0
    assert after.P[0, 0] == pytest.approx(before.P[0, 0] + 0.03**2 * 10.0, rel=1e-12)
    assert after.nis == 0.0


@pytest.mark.parametrize("measurement, named", [
    ({"T_bulk": 433.0, "level": 3.0}, "level"),
    ({"T_bulk": 433.0, "T_return": math.nan}, "T_return"),
    ({"T_bulk": math.inf}, "T_bulk"),
])
def test_bad_measurements_raise_naming_the_signal_and_leave_the_state(measurement, named):
    model = build_model()
    ekf = ExtendedKalmanFilter(model, EstimatorSettings())
    state = ekf.initial_state(model.states.nominal)
    x, P = state.x.copy(), state.P.copy()
    with pytest.raises(ValueError, match=named):
        ekf.step(state, model.inputs.nominal, model.disturbances.nominal, measurement, 120.0)
    np.testing.assert_array_equal(state.x, x)
    np.testing.assert_array_equal(state.P, P)


@pytest.mark.parametrize("settings, named", [
    (EstimatorSettings(process_std={"level": 1.0}), "level"),
    (EstimatorSettings(measurement_std={"T_top": 1.0}), "T_top"),
    (EstimatorSettings(initial_std={"mass": 1.0}), "mass"),
    (EstimatorSettings(measurement_std={"T_return": 0.0}), "T_return"),
    (EstimatorSettings(process_std={"T_bulk": -1.0}), "T_bulk"),
])
def test_bad_settings_raise_naming_the_signal(settings, named):
    with pytest.raises(ValueError, match=named):
        ExtendedKalmanFilter(build_model(), settings)


def test_build_estimator_knows_ekf_and_lists_known_kinds():
    model = build_model()
    assert isinstance(build_estimator(model, EstimatorSettings()), ExtendedKalmanFilter)
    with pytest.raises(ValueError, match="kalman.*kf, ekf, ukf"):
        build_estimator(model, EstimatorSettings(kind="kalman"))


def test_a_long_gap_between_measurements_is_predicted_in_model_steps():
    """A first measurement an hour late (actors starting at 60x real time) on a plant with
    a 5 s time constant: one RK4 step over 3600 s diverges, model-dt sub-steps do not.
    The estimate after the gap must equal the same filter fed the steps one by one."""
    from plants.centrifugal_pump import DEFAULTS, build_model

    model = build_model(dt=DEFAULTS.period_s)
    ekf = ExtendedKalmanFilter(model, DEFAULTS.estimator)
    x0, u0, d0, _ = model.steady_input_vectors()
    start = ekf.initial_state(x0)
    at_once = ekf.step(start, u0 * 0.95, d0, {}, 3600.0)
    stepwise = start
    for _ in range(int(3600.0 / model.dt)):
        stepwise = ekf.step(stepwise, u0 * 0.95, d0, {}, model.dt)
    assert np.all(np.isfinite(at_once.x)) and np.all(np.isfinite(at_once.P))
    np.testing.assert_allclose(at_once.x, stepwise.x, rtol=1e-9)
    np.testing.assert_allclose(at_once.P, stepwise.P, rtol=1e-6)
