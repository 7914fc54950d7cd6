"""Site configuration: a TOML file decoded into typed, frozen structs.

Errors name the file, the key and the problem, e.g.
``examples/pilot.toml: assets[1].period_s: Expected `float`, got `str```.

A site file::

    [site]
    name = "pilot"
    speed = 60.0                       # twin seconds per wall second

    [[assets]]
    id = "tank-01"
    kind = "asphalt_tank"
    period_s = 120.0
    initial = { T_bulk = 423.15 }      # state values, SI
    reference = { T_bulk = 433.15 }    # output targets, SI
    [assets.limits.m_oil]
    lower = 0.1
    upper = 10.0
    max_rate = 0.01                    # per second
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import msgspec

from engine.messages import Mode


class ConfigError(ValueError):
    """A site file problem, naming the file and the key."""

    def __init__(self, path: str | Path, key: str, problem: str) -> None:
        self.path, self.key, self.problem = str(path), key, problem
        super().__init__(f"{path}: {key}: {problem}" if key else f"{path}: {problem}")


class _Strict(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class SetpointLimit(_Strict):
    """Hard limits the safety policy enforces on one manipulated input.

    Attributes:
        lower: lowest value that may be written, input units.
        upper: highest value that may be written, input units.
        max_rate: largest change per second of twin time, input units per second.
    """

    lower: float = -math.inf
    upper: float = math.inf
    max_rate: float = math.inf


class ControllerSettings(_Strict):
    """MPC tuning. The stage cost over the horizon is

        sum_k  sum_y w_y ((y_k - r_y) / s_y)^2  +  sum_u w_du ((u_k - u_{k-1}) / s_u)^2

    with s the span (upper - lower) of each output or input, so weights are
    dimensionless; outputs without a reference are not tracked.

    Attributes:
        backend: "do-mpc" (the reference backend).
        horizon: prediction horizon in controller steps (the asset's period).
        tracking: weight w_y per output name; outputs not listed weigh 1.
        move_suppression: weight w_du per input name; inputs not listed weigh 0.1.
    """

    backend: str = "do-mpc"
    horizon: int = 20
    tracking: dict[str, float] = {}
    move_suppression: dict[str, float] = {}


class EstimatorSettings(_Strict):
    """Kalman filter tuning; standard deviations default to the signals' ``std``.

    Attributes:
        kind: "kf" (linear, on the model linearised at its nominal point), "ekf" or "ukf".
        process_std: per state, std of the process noise per sqrt(second) (Q = std^2 dt).
        measurement_std: per output, std of the measurement noise (R = std^2).
        initial_std: per state or estimated parameter, std of the initial estimate
            (P0 = std^2); default 1 % of a state's nominal value (10 % of a parameter's),
            at least the process std over one hour.
        estimate_parameters: parameters estimated as augmented random-walk states, each
            with its random-walk std in parameter units per sqrt(second).
        significance: probability that the NIS chi-square test flags a correction of a
            consistent filter as an anomaly (its false-alarm rate).
        compiled: EKF only: run the model's prediction as native code compiled with the
            system C compiler (cached on disk; the first build of a model takes seconds).
    """

    kind: str = "ekf"
    process_std: dict[str, float] = {}
    measurement_std: dict[str, float] = {}
    initial_std: dict[str, float] = {}
    estimate_parameters: dict[str, float] = {}
    significance: float = 0.001
    compiled: bool = False


class SimulationSettings(_Strict):
    """How the simulated plant differs from the twin's model.

    Attributes:
        seed: random seed of the measurement noise.
        noise: multiplier on each output's ``std`` (0 = noiseless).
        mismatch: per parameter, ratio of the true value to the model's value.
        disturbances: true disturbance values where they differ from the model's.
        initial: true initial states where they differ from the twin's initial estimate
            (a worn pump's head factor, a fouled line's friction multiplier).
    """

    seed: int = 0
    noise: float = 1.0
    mismatch: dict[str, float] = {}
    disturbances: dict[str, float] = {}
    initial: dict[str, float] = {}


class AssetConfig(_Strict):
    """One asset of a site. Values are SI, keyed by signal name.

    ``period_s``, ``controller`` and ``estimator`` left out take the plant kind's
    defaults; ``reference`` and ``limits`` are merged over the kind's defaults.
    """

    id: str
    kind: str
    period_s: float | None = None
    mode: Mode = Mode.AUTONOMOUS
    max_measurement_age_s: float = math.inf
    structure: dict[str, Any] = {}
    parameters: dict[str, float] = {}
    initial: dict[str, float] = {}
    inputs: dict[str, float] = {}
    disturbances: dict[str, float] = {}
    reference: dict[str, float] = {}
    limits: dict[str, SetpointLimit] = {}
    controller: ControllerSettings | None = None
    estimator: EstimatorSettings | None = None
    simulation: SimulationSettings = SimulationSettings()


class SiteSettings(_Strict):
    """Attributes:
    name: site name, used in actor names (``safety:<name>``) and topics.
    speed: twin seconds per wall second for the real-time clock.
    audit_db: path of the SQLite audit database (relative to the working directory).
    """

    name: str
    speed: float = 1.0
    audit_db: str = "var/audit.db"


class HttpSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = 8000


class SiteConfig(_Strict):
    site: SiteSettings
    http: HttpSettings = HttpSettings()
    assets: list[AssetConfig] = []


class PlantDefaults(_Strict):
    """What a plant module recommends for an asset of its kind, before site overrides."""

    period_s: float
    reference: dict[str, float] = {}
    limits: dict[str, SetpointLimit] = {}
    controller: ControllerSettings = ControllerSettings()
    estimator: EstimatorSettings = EstimatorSettings()


def load_site(path: str | Path) -> SiteConfig:
    """Read and type-check a site file. Raises ConfigError naming file, key and problem."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ConfigError(path, "", f"cannot read: {error.strerror}") from None
    return parse_site(raw, path)


def parse_site(raw: bytes | str, path: str | Path = "<site>") -> SiteConfig:
    try:
        site = msgspec.toml.decode(raw, type=SiteConfig)
    except msgspec.ValidationError as error:
        raise ConfigError(path, *_split_validation(str(error))) from None
    except msgspec.DecodeError as error:
        raise ConfigError(path, "", f"not valid TOML: {error}") from None
    _check_site(site, path)
    return site


def _split_validation(message: str) -> tuple[str, str]:
    """msgspec says 'Expected `float`, got `str` - at `$.assets[0].period_s`'."""
    match = re.match(r"(?s)(.*) - at `\$\.?(.*)`$", message)
    if not match:
        return "", message
    problem, key = match.groups()
    return key, problem


def _check_site(site: SiteConfig, path: str | Path) -> None:
    if not site.site.speed > 0:
        raise ConfigError(path, "site.speed", f"must be positive, got {site.site.speed}")
    seen: set[str] = set()
    for i, asset in enumerate(site.assets):
        key = f"assets[{i}]"
        if asset.id in seen:
            raise ConfigError(path, f"{key}.id", f"asset id {asset.id!r} is used twice")
        seen.add(asset.id)
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", asset.id):
            raise ConfigError(path, f"{key}.id", f"{asset.id!r} must be letters, digits, '-', '_', '.'")
        if asset.period_s is not None and not asset.period_s > 0:
            raise ConfigError(path, f"{key}.period_s", f"must be positive, got {asset.period_s}")
        if asset.controller is not None and asset.controller.horizon < 1:
            raise ConfigError(path, f"{key}.controller.horizon",
                              f"must be at least 1, got {asset.controller.horizon}")
        for name, limit in asset.limits.items():
            if not limit.lower <= limit.upper:
                raise ConfigError(path, f"{key}.limits.{name}",
                                  f"lower {limit.lower} is above upper {limit.upper}")
            if not limit.max_rate > 0:
                raise ConfigError(path, f"{key}.limits.{name}.max_rate",
                                  f"must be positive, got {limit.max_rate}")
