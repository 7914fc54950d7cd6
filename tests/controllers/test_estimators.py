"""KF, EKF and UKF from any PlantModel: the linear KF's steady-state gain against the
dual DARE, UKF against EKF on linear and strongly nonlinear problems, parameter
estimation by augmented states, and the chi-square anomaly flag."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
from scipy.stats import chi2

import plants
from controllers import ESTIMATOR_KINDS, build_estimator
from controllers.ekf import ExtendedKalmanFilter
from controllers.kf import LinearKalmanFilter
from controllers.ukf import UnscentedKalmanFilter
from engine.config import EstimatorSettings, SimulationSettings
from engine.model import PlantModel
from engine.signals import Signal
from engine.simulation import SimulatedPlant
from plants.asphalt_tank import build_model as build_tank

NO_INPUT = np.zeros(0)


def oscillator(dt: float) -> PlantModel:
    """Damped mass-spring driven by a force: dpos/dt = vel, dvel/dt = -k pos - c vel + F;
    outputs the position and the velocity."""
    return PlantModel.build(
        "oscillator",
        states=[Signal("position", "m", 0.0, std=0.05), Signal("velocity", "m/s", 0.0, std=0.2)],
        inputs=[Signal("force", "N/kg", 0.0)],
        disturbances=[],
        parameters=[Signal("k", "1/s^2", 4.0), Signal("c", "1/s", 0.5)],
        outputs=[Signal("position", "m", 0.0, std=0.1), Signal("velocity", "m/s", 0.0, std=0.3)],
        dynamics=lambda x, u, d, p: {
            "position": x["velocity"],
            "velocity": -p["k"] * x["position"] - p["c"] * x["velocity"] + u["force"],
        },
        output=lambda x, u, d, p: {"position": x["position"], "velocity": x["velocity"]},
        dt=dt,
    )


def square(measurement_std: float) -> PlantModel:
    """A constant x observed through y = x^2: strongly nonlinear where sigma(x) ~ x / 2."""
    return PlantModel.build(
        "square", states=[Signal("x", "m", 2.0, std=0.0)], inputs=[], disturbances=[],
        parameters=[], outputs=[Signal("y", "m^2", 4.0, std=measurement_std)],
        dynamics=lambda x, u, d, p: {"x": 0 * x["x"]},
        output=lambda x, u, d, p: {"y": x["x"] ** 2}, dt=1.0,
    )


def gain(estimator, state, u, d, dt, outputs) -> np.ndarray:
    """The Kalman gain the estimator applies after predicting ``state`` over ``dt``,
    measured from outside: the change of its estimate per unit change of each output."""
    base = {name: 0.0 for name in outputs}
    reference = estimator.step(state, u, d, base, dt).x
    columns = [estimator.step(state, u, d, {**base, name: 1.0}, dt).x - reference
               for name in outputs]
    return np.column_stack(columns)


def test_linear_kf_steady_state_gain_equals_the_dual_dare_gain():
    """x+ = Phi x + Gamma B u with Phi = expm(A dt) (exact discretisation), Qd = Q dt,
    y = C x + v. After 300 steps the gain equals K = P C' (C P C' + R)^-1 with P from
    scipy.linalg.solve_discrete_are(Phi', C', Qd, R) (the dual form) to 1e-8."""
    dt = 0.5
    model = oscillator(dt)
    kf = LinearKalmanFilter(model, EstimatorSettings())
    A = np.array([[0.0, 1.0], [-4.0, -0.5]])
    Phi = scipy.linalg.expm(A * dt)
    C = np.eye(2)
    Qd = np.diag([0.05**2, 0.2**2]) * dt
    R = np.diag([0.1**2, 0.3**2])
    prior = scipy.linalg.solve_discrete_are(Phi.T, C.T, Qd, R)
    expected = prior @ C.T @ np.linalg.inv(C @ prior @ C.T + R)

    rng = np.random.default_rng(5)
    state = kf.initial_state(np.zeros(2))
    for k in range(300):
        force = np.array([math.sin(0.1 * k)])
        y = {"position": rng.normal(0, 0.1), "velocity": rng.normal(0, 0.3)}
        state = kf.step(state, force, NO_INPUT, y, dt)
    measured = gain(kf, state, np.array([0.3]), NO_INPUT, dt, model.outputs.names)
    np.testing.assert_allclose(measured, expected, rtol=1e-8)


def test_linear_kf_predicts_the_exact_response_to_an_input():
    """With no measurement the KF's mean follows x+ = Phi x + Gamma B u exactly, where
    Gamma = A^-1 (Phi - I) (A is invertible here)."""
    model = oscillator(0.5)
    kf = LinearKalmanFilter(model, EstimatorSettings())
    A, B = np.array([[0.0, 1.0], [-4.0, -0.5]]), np.array([0.0, 1.0])
    Phi = scipy.linalg.expm(A * 2.0)
    x0 = np.array([0.1, -0.2])
    after = kf.step(kf.initial_state(x0), np.array([0.7]), NO_INPUT, {}, 2.0)
    expected = Phi @ x0 + np.linalg.solve(A, Phi - np.eye(2)) @ B * 0.7
    np.testing.assert_allclose(after.x, expected, rtol=1e-12, atol=1e-14)


def test_ukf_equals_the_ekf_on_a_linear_plant():
    """The unscented transform is exact for linear maps, so on the linear oscillator the
    UKF and the EKF (same RK4 step) give the same estimate and covariance: 1e-9."""
    model = oscillator(0.5)
    ekf = ExtendedKalmanFilter(model, EstimatorSettings())
    ukf = UnscentedKalmanFilter(model, EstimatorSettings())
    e, u = ekf.initial_state(np.zeros(2)), ukf.initial_state(np.zeros(2))
    rng = np.random.default_rng(6)
    for k in range(100):
        force = np.array([math.cos(0.2 * k)])
        y = {"position": rng.normal(0, 0.1)} if k % 3 else {"velocity": rng.normal(0, 0.3)}
        e, u = ekf.step(e, force, NO_INPUT, y, 0.5), ukf.step(u, force, NO_INPUT, y, 0.5)
    np.testing.assert_allclose(u.x, e.x, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(u.P, e.P, rtol=1e-9)
    assert u.nis == pytest.approx(e.nis, rel=1e-9)


def test_ukf_agrees_with_the_ekf_on_the_nearly_linear_tank():
    """Over 200 noisy steps of the asphalt tank the two estimates stay within a tenth of
    the EKF's own standard deviation of each other."""
    model = build_tank()
    ekf = ExtendedKalmanFilter(model, EstimatorSettings())
    ukf = UnscentedKalmanFilter(model, EstimatorSettings())
    plant = SimulatedPlant("tank", model, SimulationSettings(seed=7), x0={"T_bulk": 430.0})
    x0 = model.states.nominal
    e, u = ekf.initial_state(x0), ukf.initial_state(x0)
    for k in range(200):
        plant.apply({"m_oil": 0.6 + 0.3 * (k // 20 % 2)})
        plant.advance(model.dt)
        y = plant.measure().values
        e = ekf.step(e, plant.u, plant.d, y, model.dt)
        u = ukf.step(u, plant.u, plant.d, y, model.dt)
        assert np.all(np.abs(u.x - e.x) <= 0.1 * np.sqrt(np.diag(e.P)))


def test_ukf_beats_the_ekf_on_a_strongly_nonlinear_measurement():
    """y = x^2 + v (std 0.5) with the prior x ~ N(2, 1): the EKF predicts E[y] = 4 where
    it is 5 and takes the slope at the mean, so it is biased and overconfident; the UKF
    captures the second moment. Over 2000 Monte Carlo draws of the true x, after one
    correction: the UKF's error RMS is at least 15 % lower, its normalised estimation
    error squared (NEES) averages 1 as it should (0.85..1.2), the EKF's above 5."""
    model = square(0.5)
    settings = EstimatorSettings(initial_std={"x": 1.0})
    ekf, ukf = ExtendedKalmanFilter(model, settings), UnscentedKalmanFilter(model, settings)
    rng = np.random.default_rng(0)
    errors, nees = {"ekf": [], "ukf": []}, {"ekf": [], "ukf": []}
    for _ in range(2000):
        x = rng.normal(2.0, 1.0)
        y = {"y": x * x + rng.normal(0.0, 0.5)}
        for name, estimator in (("ekf", ekf), ("ukf", ukf)):
            after = estimator.step(estimator.initial_state([2.0]), NO_INPUT, NO_INPUT, y, 1.0)
            errors[name].append(after.x[0] - x)
            nees[name].append((after.x[0] - x) ** 2 / after.P[0, 0])
    rms = {name: math.sqrt(np.mean(np.square(e))) for name, e in errors.items()}
    assert rms["ukf"] < 0.85 * rms["ekf"]
    assert 0.85 < np.mean(nees["ukf"]) < 1.2
    assert np.mean(nees["ekf"]) > 5.0


@pytest.mark.parametrize("kind", ["ekf", "ukf"])
def test_augmented_state_estimates_a_fouled_coil(kind):
    """The real tank's coil conducts 20 % less than the model's (k_foul 0.8, not 1).
    Estimating k_foul as a random walk (1e-4 per sqrt(s)) from T_bulk and T_return while
    the hot-oil flow steps between 0.5 and 1.5 kg/s every 2 h: after 24 h the estimate is
    within 3 % of the truth and within 3 of its reported std; the estimate reports the
    parameter by name."""
    model = build_tank()
    settings = EstimatorSettings(kind=kind, estimate_parameters={"k_foul": 1e-4},
                                 initial_std={"k_foul": 0.25})
    estimator = build_estimator(model, settings)
    assert estimator.parameter_names == ("k_foul",)
    plant = SimulatedPlant("tank", model, SimulationSettings(seed=8, mismatch={"k_foul": 0.8}))
    state = estimator.initial_state(model.states.nominal)
    assert state.x[-1] == 1.0
    for k in range(720):
        plant.apply({"m_oil": 0.5 + (k // 60 % 2)})
        plant.advance(model.dt)
        state = estimator.step(state, plant.u, plant.d, plant.measure().values, model.dt)
    estimate, std = state.x[-1], math.sqrt(state.P[-1, -1])
    assert estimate == pytest.approx(0.8, rel=0.03)
    assert abs(estimate - 0.8) <= 3 * std


def test_control_loop_reports_estimated_parameters_and_gives_the_controller_states_only():
    from controllers import build_controller
    from engine.loop import ControlLoop
    from engine.messages import Measurement

    model = build_tank()
    estimator = build_estimator(model, EstimatorSettings(estimate_parameters={"k_loss": 1e-4}))
    loop = ControlLoop("tank", model, estimator,
                       build_controller(model, plants.DEFAULTS["asphalt_tank"].controller, {}))
    loop.observe(Measurement("tank", 120.0, {"T_bulk": 433.0, "T_return": 440.0}))
    estimate = loop.estimate()
    assert set(estimate.values) == {"T_bulk", "T_return"}
    assert estimate.parameters["k_loss"] == pytest.approx(1.0, abs=0.1)
    assert estimate.parameter_std["k_loss"] > 0
    assert loop.x.shape == (2,)


def tank_run(steps: int, seed: int, significance: float, fault=None):
    """A consistent tank filter: the truth gets exactly the process and measurement noise
    the filter assumes. ``fault(k, y)`` may corrupt measurement k. Yields states."""
    model = build_tank()
    ekf = ExtendedKalmanFilter(model, EstimatorSettings(significance=significance))
    rng = np.random.default_rng(seed)
    u, d = model.inputs.nominal, model.disturbances.nominal
    truth = model.states.nominal
    state = ekf.initial_state(truth)
    for k in range(steps):
        truth = model.step(truth, u, d) + rng.normal(0.0, model.states.std * math.sqrt(model.dt))
        y = model.outputs.mapping(model.output(0.0, truth, u, d)
                                  + rng.normal(0.0, model.outputs.std))
        if fault is not None:
            y = fault(k, y)
        state = ekf.step(state, u, d, y, model.dt)
        yield state


def test_chi_square_flag_stays_at_its_significance_rate_on_clean_data():
    """At significance 0.01 and 2 measured outputs the threshold is chi2.ppf(0.99, 2)
    = 9.21; over 5000 clean steps about 50 are flagged (binomial std 7): 25..75."""
    states = list(tank_run(5050, seed=9, significance=0.01))[50:]
    assert states[0].dof == 2
    assert states[0].nis_threshold == pytest.approx(chi2.ppf(0.99, 2))
    flagged = sum(s.anomaly for s in states)
    assert 25 <= flagged <= 75


def test_chi_square_flag_fires_on_an_injected_sensor_fault():
    """The T_bulk probe reads 2 K high (10 of its sigmas) from step 300 on: the flag
    fires on the first faulty step, while in the 300 clean steps before it is quiet but
    for at most the few false alarms its significance (0.001) allows."""
    def biased(k, y):
        return {**y, "T_bulk": y["T_bulk"] + 2.0} if k >= 300 else y

    states = list(tank_run(310, seed=10, significance=0.001, fault=biased))
    assert sum(s.anomaly for s in states[:300]) <= 2
    assert states[300].anomaly
    assert states[300].nis > 50


def test_partial_measurement_tests_with_the_degrees_of_freedom_measured():
    model = build_tank()
    ekf = ExtendedKalmanFilter(model, EstimatorSettings(significance=0.05))
    state = ekf.step(ekf.initial_state(model.states.nominal), model.inputs.nominal,
                     model.disturbances.nominal, {"T_return": 441.0}, 120.0)
    assert state.dof == 1
    assert state.nis_threshold == pytest.approx(chi2.ppf(0.95, 1))


@pytest.mark.parametrize("kind", ESTIMATOR_KINDS)
@pytest.mark.parametrize("plant", sorted(plants.BUILDERS))
def test_every_estimator_runs_on_every_plant_kind_at_nominal(kind, plant):
    """Built from each seed plant with its default tuning and fed its own nominal outputs,
    each estimator stays finite near the nominal state (within 5 of its std)."""
    model = plants.build_model(plant, dt=plants.DEFAULTS[plant].period_s)
    settings = plants.DEFAULTS[plant].estimator
    estimator = build_estimator(model, EstimatorSettings(
        kind=kind, process_std=settings.process_std, measurement_std=settings.measurement_std,
        initial_std=settings.initial_std))
    x, u, d, _ = model.steady_input_vectors()
    state = estimator.initial_state(x)
    y = model.outputs.mapping(model.output(0.0, x, u, d))
    for _ in range(5):
        state = estimator.step(state, u, d, y, model.dt)
    assert np.all(np.isfinite(state.x)) and np.all(np.isfinite(state.P))


@pytest.mark.parametrize("settings, message", [
    (EstimatorSettings(estimate_parameters={"UA": 1.0}), "estimate_parameters.*UA"),
    (EstimatorSettings(estimate_parameters={"k_foul": -1.0}),
     r"estimate_parameters\['k_foul'\] must be finite and >= 0"),
    (EstimatorSettings(significance=0.0), "significance"),
    (EstimatorSettings(process_std={"k_foul": 1.0}), "process_std.*k_foul"),
])
def test_bad_estimator_settings_name_the_setting(settings, message):
    with pytest.raises(ValueError, match=message):
        ExtendedKalmanFilter(build_tank(), settings)


def test_compiled_ekf_matches_the_interpreted_one(tmp_path, monkeypatch):
    """EstimatorSettings.compiled builds the prediction as native code (system C
    compiler, cached in $TWINLOOP_CACHE_DIR): the same estimates to 1e-12 relative, and a
    second filter loads the cached library instead of compiling again."""
    import shutil

    if shutil.which("cc") is None:
        pytest.skip("no C compiler (cc); .ci/run installs gcc")
    monkeypatch.setenv("TWINLOOP_CACHE_DIR", str(tmp_path))
    model = build_tank()
    interpreted = ExtendedKalmanFilter(model, EstimatorSettings())
    native = ExtendedKalmanFilter(model, EstimatorSettings(compiled=True))
    libraries = sorted(p.name for p in tmp_path.glob("*.so"))
    assert len(libraries) == 2
    a = interpreted.initial_state(model.states.nominal)
    b = native.initial_state(model.states.nominal)
    rng = np.random.default_rng(11)
    u, d = model.inputs.nominal, model.disturbances.nominal
    for _ in range(50):
        y = {"T_bulk": 433.15 + rng.normal(0, 0.2), "T_return": 440.0 + rng.normal(0, 0.5)}
        a, b = interpreted.step(a, u, d, y, 120.0), native.step(b, u, d, y, 120.0)
    np.testing.assert_allclose(b.x, a.x, rtol=1e-12)
    np.testing.assert_allclose(b.P, a.P, rtol=1e-9)
    ExtendedKalmanFilter(model, EstimatorSettings(compiled=True))
    assert sorted(p.name for p in tmp_path.glob("*.so")) == libraries


@pytest.mark.parametrize("kind", ESTIMATOR_KINDS)
def test_an_unfiltered_output_neither_corrects_nor_flags(kind):
    """A smelter cell's specific energy is its voltage rescaled: left unfiltered (its
    default), a reading 100 std off moves no state and raises no anomaly, and the
    correction counts one output fewer; filtered, the same reading is flagged."""
    model = plants.build_model("smelter_cell", dt=60.0)
    measurement = model.outputs.mapping(model.output(0.0, model.states.nominal,
                                                     model.inputs.nominal,
                                                     model.disturbances.nominal))
    off = {**measurement, "specific_energy": measurement["specific_energy"]
           + 100 * model.outputs["specific_energy"].std}
    defaults = plants.DEFAULTS["smelter_cell"].estimator
    states = {}
    for unfiltered in (defaults.unfiltered_outputs, []):
        settings = EstimatorSettings(kind=kind, unfiltered_outputs=unfiltered)
        estimator = build_estimator(model, settings)
        start = estimator.initial_state(model.states.nominal)
        states[bool(unfiltered)] = [estimator.step(start, model.inputs.nominal,
                                                   model.disturbances.nominal, y, 60.0)
                                    for y in (measurement, off)]
    clean, wrong = states[True]
    assert np.array_equal(clean.x, wrong.x) and not wrong.anomaly
    assert wrong.dof == len(model.outputs) - len(defaults.unfiltered_outputs)
    assert states[False][1].anomaly


def test_an_unknown_unfiltered_output_is_refused():
    with pytest.raises(ValueError, match="unfiltered_outputs.*'voltage'"):
        build_estimator(build_tank(), EstimatorSettings(unfiltered_outputs=["voltage"]))
