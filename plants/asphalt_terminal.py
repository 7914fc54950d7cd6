"""The seed asphalt terminal: storage tanks on one hot-oil loop, loaded out by truck
stations. PHYSICS.md section 3, extended from plants/asphalt_tank.py to the whole plant.

Each tank i holds bitumen of mass m_i in two nodes, a bottom (bulk) node with the coil
and a top layer, fixed fractions (1 - phi) and phi of the inventory. Loading pumps draw
w_i from the bottom; receipts (the refinery rundown filling the tank) r_i enter the
bottom at T_in. To keep the fractions, phi (r_i - w_i) moves between the nodes: as the
level falls the layer above sinks into the bottom node (J_down = phi max(w_i - r_i, 0)
at the top temperature), as it rises bulk product rises into the top layer
(J_up = phi max(r_i - w_i, 0) at the bulk temperature). With c_p(T) from Cragoe and
U A the loss conductances,

    dm_i/dt                    = r_i - w_i
    (1-phi) m_i c_p(T_b) dT_b/dt = Q_coil,i - G_mix (T_b - T_t) - L_b,i (T_b - T_amb)
                                   + J_down c_p((T_b + T_t)/2) (T_t - T_b)
                                   + r_i c_p((T_b + T_in)/2) (T_in - T_b)
    phi m_i c_p(T_t) dT_t/dt   = G_mix (T_b - T_t) - L_t,i (T_t - T_amb)
                                   + J_up c_p((T_b + T_t)/2) (T_b - T_t)
    G_mix = h_mix A_i,   L_b,i = k_loss,i (U_floor A_i + U_shell pi D_i (1-phi) z_i),
    L_t,i = k_loss,i (U_roof A_i + U_shell pi D_i phi z_i + U_dry pi D_i max(H_i - z_i, 0))
    U_dry = 1 / (1/h_vapour + 1/U_shell)                        dry shell above the liquid
    z_i   = ((1-phi) m_i / rho(T_b) + phi m_i / rho(T_t)) / A_i            level, m

The dry shell (height H_i - z_i above the liquid) loses the vapour space's heat through
the same insulated wall as the wetted shell, behind the vapour's own free-convection film
h_vapour: the series resistances of Kumana & Kothari ("Predict storage-tank heat transfer
precisely", Chem. Eng., March 22, 1982, eq. 11: 1/U_d = 1/h_Vw + wall + insulation +
outside). h_vapour = 4 W/(m^2 K) is Holman's simplified free-convection coefficient of air
on a vertical wall, turbulent, h = 1.31 dT^(1/3) W/(m^2 K) (Holman, Heat Transfer,
table 7-2), at the ~30 K the vapour film drops across when the insulation's U is 1
W/(m^2 K). On a 20 m tank 90 % full the dry shell adds about 5 % to the tank's loss.

The (1-phi) m c_p dT/dt form is exact for the enthalpy h(T) = int c_p dT, and the
transfer and receipt terms use h(T_1) - h(T_2) = c_p((T_1+T_2)/2)(T_1 - T_2), exact for
a c_p linear in T, so the balance closes to integration error.

The closed hot-oil loop: the heater raises the return oil to the supply temperature
T_sup (an input, held by the heater's own controller); the circulation pump delivers
m_loop (an input). Supply and return headers feed the tank coils and a fixed
minimum-flow bypass in parallel. With header losses small next to the branches, every
branch sees the same pressure difference dP and passes K v sqrt(dP), K its flow at full
opening at the design dP, v the valve opening (linear trim), so

    m_i = m_loop K_i v_i / S,   m_bypass = m_loop K_bypass / S,   S = K_bypass + sum_j K_j v_j

which sums to m_loop exactly and never divides by zero (K_bypass > 0). Each coil is a
heat exchanger against its well-mixed bottom node (PHYSICS.md), its conductance the
bitumen's free-convection film (Churchill & Chu, ``bitumen.coil_film_coefficient``) over
the coil's outside area, so a cooler, more viscous bulk takes less heat from its coil:

    UA_i     = k_foul,i h_o(T_b,i, T_sup) A_coil,i
    T_out,i  = T_b,i + (T_sup - T_b,i) exp(-UA_i / (m_i c_oil))
    Q_coil,i = m_i c_oil (T_sup - T_out,i)
    M_loop dT_ret/dt = m_loop (T_mix - T_ret),
    T_mix = (sum_i m_i T_out,i + m_bypass T_sup) / m_loop     (loop hold-up lag)
    Q_heater = m_loop c_oil (T_sup - T_ret)

Signals (SI; tt = tank number 01..N):
    states (3N + 1):  T_bulk_tt [K], T_top_tt [K], mass_tt [kg], T_return [K]
    inputs:           T_supply [K], m_loop [kg/s], valve_tt [1] coil valve opening 0..1
    disturbances:     T_ambient [K], draw_tt [kg/s] loading draw (see ``tank_draws``),
                      receipt_tt [kg/s] filling flow, T_receipt [K] received product
    outputs:          T_bulk_tt, T_top_tt [K], level_tt [m],
                      viscosity_tt [m^2/s] Walther at T_bulk (1 cSt = 1e-6 m^2/s),
                      T_return [K], heater_duty [W]
    parameters:       per tank diameter_tt [m], shell_height_tt [m], coil_area_tt [m^2],
                      valve_capacity_tt [kg/s], k_loss_tt [1] loss multiplier, k_foul_tt
                      [1] fouling multiplier; shared SG [1], walther_A, walther_B [1],
                      U_shell, U_roof, U_floor, h_vapour [W/(m^2 K)], h_mix [W/(m^2 K)],
                      coil_diameter [m], top_fraction [1], c_oil [J/(kg K)], M_loop [kg],
                      bypass_capacity [kg/s]

Tanks: ``build_model(tanks=n)`` builds the first n of the seed's ten; a site describes
its own tanks, any number of them, as a list of TankSpec tables in the asset's
``structure`` (``[[assets.structure.tanks]]`` with diameter, shell_height, level and
coil_area; see tests/sites/three_tanks.toml). The kind's defaults (reference, limits,
tracking weights) follow the tank count: ``defaults(tanks=...)``.

Loading: ``stations`` truck-loading pumps (STATION_PUMP_FLOW each) can each be lined up
to any tank; ``tank_draws`` turns their line-ups and flows into the draw_tt disturbances,
bounded by all stations on one tank. ``coil_flows`` and ``coil_outlet_temperature`` are
the loop's hydraulics and the coil formula, usable on numbers for displays and checks.

The EKF estimates the 3N + 1 states (31 for the seed plant). The loss and fouling
multipliers are parameters, not states: they keep the state count near 30, and a
simulated plant's mismatch in them shows up as process noise on the tank temperatures.

Simplifications: receipts enter the bottom node and mix there at once; the top
layer is a fixed mass fraction rather than a fixed thickness; the vapour space has no
node of its own (the roof and the dry shell lose the top layer's heat through the
vapour's films); the coil's oil-side film is left out; the floor loses to ambient
air temperature; no heat loss from the oil headers, no hold-up in the heater or supply
header; draws keep running below the heel (the mass's lower bound flags it), and the node
masses in the heat capacities are floored at the heel mass (ca.fmax) so an over-drawn tank
stays finite. The 1:20 m
seed plan fixes the tanks' sizes here, not the piping lengths. Tank data (unverified):
diameters 12–20 m, shells 12–14 m, 1400–4400 m^3; a 60/70-pen grade with 400 cSt at
135 °C and 2e5 cSt at 60 °C (bitumen.DEFAULT_GRADE); 2-inch coils of 0.23 m^2 per m^2 of
floor; thermal oil at 250 °C.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import casadi as ca
import msgspec
import numpy as np

from engine.config import (
    AlarmSettings,
    AssetConfig,
    ControllerSettings,
    EstimatorSettings,
    PlantDefaults,
    SetpointLimit,
)
from engine.model import PlantModel
from engine.signals import Signal
from plants import bitumen
from plants.asphalt_tank import COIL_TUBE_DIAMETER
from plants.steady_state import at_steady_state
from plants.views import Tank, TerminalView

KIND = "asphalt_terminal"

HEEL_LEVEL = 0.3
"""Level of the loading suction nozzle; the inventory below it cannot be drawn, m."""
COIL_AREA_PER_FLOOR_AREA = 0.23
"""Seed coils' outside area per m^2 of tank floor (unverified): about 12 m of 2-inch tube
per m^2, some 25 W/K per m^2 of floor at 160 °C."""


class TankSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One storage tank of the terminal, as a site file's ``[[assets.structure.tanks]]``.

    Attributes:
        diameter: shell inside diameter, m (1..60).
        shell_height: shell height, m (above the nominal level).
        level: nominal level, m (above the heel, below the shell height).
        coil_area: outside area of the heating coil, m^2 (> 0).
        x, y: plan position of the tank's centre, m east and north of the terminal's
            datum; without them the console lays the tanks out (``plan_positions``).
    """

    diameter: float
    shell_height: float
    level: float
    coil_area: float
    x: float | None = None
    y: float | None = None

    def __post_init__(self) -> None:
        if not 1.0 <= self.diameter <= 60.0:
            raise ValueError(f"diameter: {self.diameter:g} m is outside 1..60 m")
        if not HEEL_LEVEL < self.level < self.shell_height:
            raise ValueError(f"level: {self.level:g} m must lie between the heel "
                             f"({HEEL_LEVEL:g} m) and the shell height ({self.shell_height:g} m)")
        if not self.coil_area > 0.0:
            raise ValueError(f"coil_area: {self.coil_area:g} m2 must be above 0 m2")


def _seed_tank(diameter: float, shell_height: float, level: float) -> TankSpec:
    coil_area = round(COIL_AREA_PER_FLOOR_AREA * np.pi / 4 * diameter**2)
    return TankSpec(diameter=diameter, shell_height=shell_height, level=level,
                    coil_area=coil_area)


SEED_TANKS = tuple(_seed_tank(*tank) for tank in (
    # diameter m, shell height m, nominal level m
    (20.0, 14.0, 9.0), (20.0, 14.0, 7.5), (18.0, 14.0, 10.0), (18.0, 14.0, 6.0),
    (16.0, 14.0, 8.5), (16.0, 14.0, 11.0), (14.0, 12.0, 7.0), (14.0, 12.0, 9.5),
    (12.0, 12.0, 5.5), (12.0, 12.0, 8.0),
))
"""The seed terminal's ten tanks (unverified)."""

STORAGE_TEMPERATURE = 433.15
"""Nominal and reference bulk temperature, 160 °C (storage band 140–180 °C), K."""
COKING_TEMPERATURE = 473.15
"""200 °C: bitumen above it cokes on the coil skin; the tank temperatures' upper bound, K."""
SUPPLY_TEMPERATURE = 523.15
"""Nominal hot-oil supply temperature, 250 °C, K."""
LOOP_FLOW = 12.0
"""Nominal circulation flow, kg/s; the coil valves' nominal openings follow from it (with
the dry shells' loss, 10 kg/s needed the seed's valves 66–87 % open; 12 kg/s, 32–43 %)."""
STATION_PUMP_FLOW = 30.0
"""Capacity of one loading station's pump, kg/s (about 110 m^3/h at 160 °C)."""
RECEIPT_FLOW = 60.0
"""Largest receipt flow into one tank, kg/s (about 200 m^3/h of rundown, unverified)."""
VALVE_FLOW_PER_COIL_AREA = 0.024
"""Coil branch flow at full opening per m^2 of coil, kg/s per m^2: the valves are sized
so a fully open coil runs at NTU = UA / (m c_oil) of about 2 with the film at 160 °C
(h_o about 110 W/(m^2 K): 110 / (2 x 2300))."""
VAPOUR_FILM = 4.0
"""Vapour-space film on the dry shell, W/(m^2 K): Holman's h = 1.31 dT^(1/3) for air on a
vertical wall at dT of about 30 K (module docstring)."""
_FLOW_FLOOR = 1e-6
"""Added to a coil's flow in its NTU only, so a shut coil gives exp(-inf) = 0, kg/s."""


def plan_positions(tanks: Sequence[TankSpec]) -> list[tuple[float, float]]:
    """Each tank's plan position (centre, m): its own ``x, y`` if the site file gives them,
    else two rows in site-file order, shell to shell (D_i + D_j) / 6 apart and at least
    0.9 m (NFPA 30 Table 22.4.2.1's spacing of adjacent tanks)."""
    per_row = max(1, -(-len(tanks) // 2))
    rows = [list(tanks[i:i + per_row]) for i in range(0, len(tanks), per_row)]
    width = max(t.diameter for t in tanks)
    laid, y = [], 0.0
    for row in rows:
        x, previous = 0.0, None
        for tank in row:
            if previous is not None:
                gap = max(0.9, (previous.diameter + tank.diameter) / 6)
                x += previous.diameter / 2 + gap + tank.diameter / 2
            laid.append((x, y))
            previous = tank
        y -= width + max(0.9, width / 3)
    return [(t.x, t.y) if t.x is not None and t.y is not None else position
            for t, position in zip(tanks, laid, strict=True)]


def _tags(tanks: int) -> list[str]:
    return [f"{i + 1:02d}" for i in range(tanks)]


LOW_TEMPERATURE = 413.15
"""140 °C, the bottom of the storage band (PHYSICS.md section 3): a tank's LO alarm, K."""
HIGH_LEVEL_MARGIN = 1.0
"""A tank's HI level alarm sits this far below its shell top, m: ahead of the pilot
site's high-high trips at 0.7 m, so the operator can stop a receipt first."""


def _alarms(tanks: Sequence[TankSpec]) -> list[AlarmSettings]:
    alarms: list[AlarmSettings] = []
    for tag, tank in zip(_tags(len(tanks)), tanks, strict=True):
        height = tank.shell_height
        alarms += [
            AlarmSettings(signal=f"level_{tag}", kind="HI", limit=height - HIGH_LEVEL_MARGIN,
                          deadband=0.05, priority="HIGH", message=f"tank {tag} nears its "
                          f"{height:g} m shell: stop the receipt"),
            AlarmSettings(signal=f"T_bulk_{tag}", kind="LO", limit=LOW_TEMPERATURE,
                          deadband=1.0, priority="MEDIUM", message=f"tank {tag} below the "
                          "140 °C storage band: too viscous to load"),
        ]
    return alarms


def _limits(tanks: int) -> dict[str, SetpointLimit]:
    limits = {
        "T_supply": SetpointLimit(lower=473.15, upper=573.15, max_rate=0.05),
        "m_loop": SetpointLimit(lower=2.0, upper=25.0, max_rate=0.05),
    }
    limits.update({f"valve_{tag}": SetpointLimit(lower=0.0, upper=1.0, max_rate=0.01)
                   for tag in _tags(tanks)})
    return limits


def tank_specs(tanks: int | Sequence[TankSpec | Mapping[str, float]]) -> tuple[TankSpec, ...]:
    """The terminal's tanks: the first ``tanks`` seed tanks for a number, else each entry
    of the list as a TankSpec (tables from a site file are checked here). Raises
    ValueError naming ``tanks[i]``, the field and the bound, TypeError for neither."""
    if isinstance(tanks, bool):
        raise TypeError(f"tanks: {tanks!r} is neither a tank count nor a list of tanks")
    if isinstance(tanks, int):
        if not 1 <= tanks <= len(SEED_TANKS):
            raise ValueError(f"tanks: {tanks} is outside 1..{len(SEED_TANKS)} (the seed plan; "
                             "describe more tanks as a list of tables)")
        return SEED_TANKS[:tanks]
    if isinstance(tanks, (str, Mapping)) or not isinstance(tanks, Sequence) or not tanks:
        raise TypeError(f"tanks: {tanks!r} is neither a tank count nor a list of tanks")
    if len(tanks) > 99:
        raise ValueError(f"tanks: {len(tanks)} tanks, more than the 99 of two-digit tags")
    specs = []
    for i, tank in enumerate(tanks):
        try:
            specs.append(tank if isinstance(tank, TankSpec)
                         else msgspec.convert(tank, TankSpec, strict=False))
        except (msgspec.ValidationError, ValueError) as error:
            raise ValueError(f"tanks[{i}]: {error}") from None
    return tuple(specs)


def defaults(tanks: int | Sequence[TankSpec | Mapping[str, float]] = len(SEED_TANKS),
             stations: int = 3) -> PlantDefaults:
    """The kind's defaults for a terminal of ``tanks`` (as ``build_model`` takes them):
    every tank held at 160 °C; 5-minute steps over a 75-minute horizon; the heater ramps
    at most 3 K/min, the pump 0.05 kg/s per second, a coil valve full stroke in 100 s.
    The top-layer temperature starts less certain (5 K) than the other states.
    Alarms per tank: HI level 1 m below the shell top (deadband 0.05 m, 25 times the
    radar's 2 mm noise) and LO bulk temperature at 140 °C."""
    specs = tank_specs(tanks)
    tags = _tags(len(specs))
    return PlantDefaults(
        period_s=300.0,
        reference={f"T_bulk_{tag}": STORAGE_TEMPERATURE for tag in tags},
        limits=_limits(len(tags)),
        controller=ControllerSettings(
            horizon=15,
            tracking={f"T_bulk_{tag}": 1.0 for tag in tags},
            move_suppression={"T_supply": 0.5, "m_loop": 0.1,
                              **{f"valve_{tag}": 0.1 for tag in tags}},
        ),
        estimator=EstimatorSettings(
            kind="ekf", initial_std={f"T_top_{tag}": 5.0 for tag in tags},
        ),
        alarms=_alarms(specs),
    )


DEFAULTS = defaults()
"""The seed terminal's defaults (ten tanks)."""


def tank_draws(
    lineup: Mapping[int, int], pump_flows: Mapping[int, float], *, tanks: int = 10,
    stations: int = 3,
) -> dict[str, float]:
    """Per-tank loading draws (the ``draw_tt`` disturbances, kg/s) from the stations.

    ``lineup`` maps station number (1..stations) to the tank number (1..tanks) its pump
    draws from; ``pump_flows`` maps station number to pump flow, kg/s, 0..STATION_PUMP_FLOW.
    Stations without a lineup or a flow draw nothing; two stations may draw from one tank.
    """
    draws = {f"draw_{tag}": 0.0 for tag in _tags(tanks)}
    for station, flow in pump_flows.items():
        if not 1 <= station <= stations:
            raise ValueError(f"pump_flows: station {station} is not in 1..{stations}")
        if not 0.0 <= flow <= STATION_PUMP_FLOW:
            raise ValueError(f"pump_flows: station {station} flow {flow:g} kg/s is outside "
                             f"0..{STATION_PUMP_FLOW:g} kg/s")
        if flow == 0.0:
            continue
        tank = lineup.get(station)
        if tank is None:
            raise ValueError(f"lineup: station {station} pumps {flow:g} kg/s but has no tank")
        if not 1 <= tank <= tanks:
            raise ValueError(f"lineup: station {station} tank {tank} is not in 1..{tanks}")
        draws[f"draw_{tank:02d}"] += flow
    return draws


def coil_flows(loop_flow, openings, capacities, bypass_capacity):
    """Split of the loop flow over parallel coil branches and the bypass, kg/s.

    Every branch sees the same header pressure difference, so branch i passes
    m_i = m_loop K_i v_i / S and the bypass m_loop K_bypass / S, S = K_bypass + sum K_j v_j;
    the flows sum to ``loop_flow``. Returns (list of coil flows, bypass flow). Floats or
    CasADi symbols.
    """
    weights = [capacity * opening for capacity, opening in zip(capacities, openings, strict=True)]
    share = bypass_capacity + sum(weights)
    return [loop_flow * weight / share for weight in weights], loop_flow * bypass_capacity / share


def coil_outlet_temperature(tank_temperature, inlet_temperature, conductance, oil_flow,
                            oil_heat_capacity):
    """Hot-oil temperature leaving a coil in a well-mixed tank, K (PHYSICS.md):

    T_out = T + (T_in - T) exp(-UA / (m_oil c_oil)), with m_oil + 1e-6 kg/s in the
    exponent so a shut coil (m_oil = 0) gives T_out = T without dividing by zero.
    Floats or CasADi symbols; ``conductance`` UA in W/K, ``oil_flow`` in kg/s.
    """
    ntu = conductance / ((oil_flow + _FLOW_FLOOR) * oil_heat_capacity)
    return tank_temperature + (inlet_temperature - tank_temperature) * ca.exp(-ntu)


def build_model(dt: float = 300.0,
                tanks: int | Sequence[TankSpec | Mapping[str, float]] = len(SEED_TANKS),
                stations: int = 3) -> PlantModel:
    """The terminal's ``tanks`` (a count of seed tanks or a list of TankSpecs, see
    ``tank_specs``) on one hot-oil loop, ``stations`` loading pumps, step ``dt`` s.
    Nominal values are the steady state with every bulk at 160 °C and every level at its
    nominal value, no loading, 250 °C supply and 12 kg/s circulation: the valve openings,
    top-layer and return temperatures and inventories that hold it are solved here, on
    the model's own equations."""
    seed = tank_specs(tanks)
    if not stations >= 1:
        raise ValueError(f"stations: {stations} must be at least 1")
    tags = _tags(len(seed))
    walther_a, walther_b = bitumen.walther_coefficients(*bitumen.DEFAULT_GRADE[0],
                                                        *bitumen.DEFAULT_GRADE[1])
    parameters = _parameters(seed, walther_a, walther_b)
    p0 = {s.name: s.nominal for s in parameters}
    states, inputs, disturbances, outputs = _signals(tags, seed, stations, p0)

    def dynamics(x, u, d, p):
        return _terminal(tags, x, u, d, p)[0]

    def output(x, u, d, p):
        return _terminal(tags, x, u, d, p)[1]

    model = PlantModel.build(
        KIND, states=states, inputs=inputs, disturbances=disturbances, parameters=parameters,
        outputs=outputs, dynamics=dynamics, output=output, dt=dt, substeps=4,
    )
    return _at_steady_state(model, tags, seed)


def _terminal(tags, x, u, d, p):
    """(dx/dt, y) of the whole terminal as name -> expression mappings, with each tank's
    coil (hot-oil flow kg/s, duty W) by tag and the bypass flow, kg/s."""
    phi, sg, c_oil = p["top_fraction"], p["SG"], p["c_oil"]
    T_sup, T_amb, flow = u["T_supply"], d["T_ambient"], u["m_loop"]
    T_in = d["T_receipt"]
    flows, bypass_flow = coil_flows(
        flow, [u[f"valve_{tag}"] for tag in tags],
        [p[f"valve_capacity_{tag}"] for tag in tags], p["bypass_capacity"])
    heat_returned = bypass_flow * T_sup
    rates, values, coils = {}, {}, {}
    for tag, coil_flow in zip(tags, flows, strict=True):
        T_b, T_t, m = x[f"T_bulk_{tag}"], x[f"T_top_{tag}"], x[f"mass_{tag}"]
        w, r = d[f"draw_{tag}"], d[f"receipt_{tag}"]
        diameter = p[f"diameter_{tag}"]
        area = np.pi / 4 * diameter**2
        heel = _heel_mass(area, sg)
        volume = m * (1 - phi) / bitumen.density(T_b, sg) + m * phi / bitumen.density(T_t, sg)
        level = volume / area
        shell = p["U_shell"] * np.pi * diameter * level
        dry_shell = (np.pi * diameter * ca.fmax(p[f"shell_height_{tag}"] - level, 0)
                     / (1 / p["h_vapour"] + 1 / p["U_shell"]))
        loss_bottom = p[f"k_loss_{tag}"] * (p["U_floor"] * area + shell * (1 - phi))
        loss_top = p[f"k_loss_{tag}"] * (p["U_roof"] * area + shell * phi + dry_shell)
        mixing = p["h_mix"] * area * (T_b - T_t)
        film = bitumen.coil_film_coefficient(T_b, T_sup, p["coil_diameter"], sg,
                                             p["walther_A"], p["walther_B"])
        T_out = coil_outlet_temperature(
            T_b, T_sup, p[f"k_foul_{tag}"] * film * p[f"coil_area_{tag}"], coil_flow, c_oil)
        q_coil = coil_flow * c_oil * (T_sup - T_out)
        coils[tag] = (coil_flow, q_coil)
        heat_returned += coil_flow * T_out
        # energy balances; the layer moving between the nodes carries its enthalpy,
        # receipts theirs into the bottom
        transfer = bitumen.specific_heat((T_b + T_t) / 2, sg) * (T_t - T_b)
        sinking = phi * ca.fmax(w - r, 0) * transfer
        rising = -phi * ca.fmax(r - w, 0) * transfer
        received = r * bitumen.specific_heat((T_b + T_in) / 2, sg) * (T_in - T_b)
        bottom_heat = q_coil - mixing - loss_bottom * (T_b - T_amb) + sinking + received
        top_heat = mixing - loss_top * (T_t - T_amb) + rising
        rates[f"T_bulk_{tag}"] = bottom_heat / (
            (1 - phi) * ca.fmax(m, heel) * bitumen.specific_heat(T_b, sg))
        rates[f"T_top_{tag}"] = top_heat / (
            phi * ca.fmax(m, heel) * bitumen.specific_heat(T_t, sg))
        rates[f"mass_{tag}"] = r - w
        values[f"T_bulk_{tag}"] = T_b
        values[f"T_top_{tag}"] = T_t
        values[f"level_{tag}"] = level
        values[f"viscosity_{tag}"] = bitumen.kinematic_viscosity(
            T_b, p["walther_A"], p["walther_B"])
    T_ret = x["T_return"]
    rates["T_return"] = (heat_returned - flow * T_ret) / p["M_loop"]
    values["T_return"] = T_ret
    values["heater_duty"] = flow * c_oil * (T_sup - T_ret)
    return rates, values, coils, bypass_flow


def _heel_mass(area, specific_gravity):
    """Bitumen below the suction nozzle at the coking limit (the lightest it gets), kg."""
    return bitumen.density(COKING_TEMPERATURE, specific_gravity) * area * HEEL_LEVEL


def _parameters(seed, walther_a: float, walther_b: float) -> list[Signal]:
    per_tank = []
    for tag, tank in zip(_tags(len(seed)), seed, strict=True):
        per_tank += [
            Signal(f"diameter_{tag}", "m", tank.diameter, 1.0, 60.0, f"tank {tag} diameter"),
            Signal(f"shell_height_{tag}", "m", tank.shell_height, 1.0, 40.0,
                   f"tank {tag} shell height"),
            Signal(f"coil_area_{tag}", "m2", tank.coil_area, 0.1, 5e3,
                   f"tank {tag} coil outside area"),
            Signal(f"valve_capacity_{tag}", "kg/s",
                   round(VALVE_FLOW_PER_COIL_AREA * tank.coil_area, 2), 0.01, 100.0,
                   f"tank {tag} coil branch flow at full opening, design header dP"),
            Signal(f"k_loss_{tag}", "1", 1.0, 0.1, 10.0, f"tank {tag} heat-loss multiplier"),
            Signal(f"k_foul_{tag}", "1", 1.0, 0.05, 2.0, f"tank {tag} coil fouling multiplier"),
        ]
    shared = [
        Signal("SG", "1", 1.03, 1.0, 1.1, "bitumen specific gravity at 25 °C"),
        Signal("walther_A", "1", walther_a, 5.0, 15.0, "Walther constant A (nu in cSt, T in K)"),
        Signal("walther_B", "1", walther_b, 1.0, 6.0, "Walther constant B"),
        Signal("U_shell", "W/(m2 K)", 1.0, 0.05, 20.0, "insulated shell loss coefficient"),
        Signal("U_roof", "W/(m2 K)", 1.5, 0.05, 20.0, "roof and vapour-space loss coefficient"),
        Signal("h_vapour", "W/(m2 K)", VAPOUR_FILM, 0.5, 50.0,
               "vapour-space film on the dry shell (free convection)"),
        Signal("coil_diameter", "m", COIL_TUBE_DIAMETER, 0.01, 0.3,
               "coil tube outside diameter"),
        Signal("U_floor", "W/(m2 K)", 0.7, 0.05, 20.0, "floor-to-foundation loss coefficient"),
        Signal("h_mix", "W/(m2 K)", 50.0, 1.0, 500.0,
               "bottom-to-top exchange per m2 of cross-section (natural convection)"),
        Signal("top_fraction", "1", 0.2, 0.05, 0.5, "mass fraction of the top layer"),
        Signal("c_oil", "J/(kg K)", 2300.0, 1e3, 4e3, "hot-oil heat capacity"),
        Signal("M_loop", "kg", 12000.0, 100.0, 1e6, "hot oil held up in the return side"),
        Signal("bypass_capacity", "kg/s", 2.0, 0.01, 100.0,
               "minimum-flow bypass flow at the design header dP"),
    ]
    return per_tank + shared


def _signals(tags, seed, stations: int, p0: Mapping[str, float]):
    """Signal specs; nominal values here are the starting guess of the steady state."""
    sg = p0["SG"]
    states, outputs, valves, draws, receipts = [], [], [], [], []
    for tag, tank in zip(tags, seed, strict=True):
        diameter, height, level = tank.diameter, tank.shell_height, tank.level
        area = np.pi / 4 * diameter**2
        full = bitumen.density(bitumen.REFERENCE_TEMPERATURE, sg) * area * height
        mass = bitumen.density(STORAGE_TEMPERATURE, sg) * area * level
        states += [
            Signal(f"T_bulk_{tag}", "K", STORAGE_TEMPERATURE, 273.15, COKING_TEMPERATURE,
                   f"tank {tag} bulk (bottom, coil) temperature", std=1e-3),
            Signal(f"T_top_{tag}", "K", STORAGE_TEMPERATURE - 5.0, 273.15, COKING_TEMPERATURE,
                   f"tank {tag} top-layer temperature", std=2e-3),
            Signal(f"mass_{tag}", "kg", mass, _heel_mass(area, sg), full,
                   f"tank {tag} bitumen inventory", std=5.0),
        ]
        outputs += [
            Signal(f"T_bulk_{tag}", "K", STORAGE_TEMPERATURE, 273.15, COKING_TEMPERATURE,
                   f"tank {tag} bulk temperature (low probe)", std=0.2),
            Signal(f"T_top_{tag}", "K", STORAGE_TEMPERATURE - 5.0, 273.15, COKING_TEMPERATURE,
                   f"tank {tag} top-layer temperature (high probe)", std=0.3),
            Signal(f"level_{tag}", "m", level, 0.0, height, f"tank {tag} level (radar)", std=2e-3),
            Signal(f"viscosity_{tag}", "m2/s", 1.3e-4, 1e-5, 1e-2,
                   f"tank {tag} kinematic viscosity at bulk temperature (10–10000 cSt, "
                   "the pumpable range); inferred", std=5e-6),
        ]
        valves.append(Signal(f"valve_{tag}", "1", 0.5, 0.0, 1.0, f"tank {tag} coil valve opening"))
        draws.append(Signal(f"draw_{tag}", "kg/s", 0.0, 0.0, stations * STATION_PUMP_FLOW,
                            f"tank {tag} loading draw"))
        receipts.append(Signal(f"receipt_{tag}", "kg/s", 0.0, 0.0, RECEIPT_FLOW,
                               f"tank {tag} receipt (filling) flow"))
    states.append(Signal("T_return", "K", 450.0, 273.15, 623.15,
                         "hot-oil mixed return temperature", std=2e-2))
    outputs += [
        Signal("T_return", "K", 450.0, 273.15, 623.15, "hot-oil return temperature", std=0.5),
        Signal("heater_duty", "W", 1.5e6, 0.0, 6e6, "hot-oil heater duty", std=2e4),
    ]
    inputs = [
        Signal("T_supply", "K", SUPPLY_TEMPERATURE, 423.15, 593.15, "hot-oil supply temperature"),
        Signal("m_loop", "kg/s", LOOP_FLOW, 1.0, 30.0, "hot-oil circulation flow"),
        *valves,
    ]
    disturbances = [Signal("T_ambient", "K", 283.15, 233.15, 323.15, "ambient air temperature"),
                    *draws, *receipts,
                    Signal("T_receipt", "K", STORAGE_TEMPERATURE, 373.15, COKING_TEMPERATURE,
                           "temperature of the received product")]
    return states, inputs, disturbances, outputs


def _at_steady_state(model: PlantModel, tags, seed) -> PlantModel:
    """The model with nominal states, valve openings and outputs replaced by the steady
    state that holds every bulk temperature and level at its nominal value.

    Unknowns: T_top and mass per tank, valve opening per tank, T_return. Equations:
    dT_bulk/dt = dT_top/dt = dT_return/dt = 0 and level = nominal level."""
    held = [model.states.index(f"{kind}_{tag}") for tag in tags
            for kind in ("T_bulk", "T_top")]
    held.append(model.states.index("T_return"))
    levels = [model.outputs.index(f"level_{tag}") for tag in tags]
    nominal_levels = ca.DM([tank.level for tank in seed])

    def residual(rates, values):
        # temperature rates in µK/s and levels in µm: residuals of one scale, whose
        # rounding noise (the return's ~0.4 K/s terms x 1e-16) stays far below 1e-6
        return ca.vertcat(rates[held] / 1e-6, (values[levels] - nominal_levels) / 1e-6)

    return at_steady_state(
        model, [f"{kind}_{tag}" for tag in tags for kind in ("T_top", "mass")] + ["T_return"],
        [f"valve_{tag}" for tag in tags], residual, abstol=1e-6)


def kpi_units(asset: AssetConfig) -> dict[str, str]:
    """The terminal's KPIs (:func:`kpis`) and their SI units."""
    return {"heater_duty": "W"}


def kpis(model: PlantModel, asset: AssetConfig, x: Mapping, u: Mapping, d: Mapping,
         p: Mapping, y: Mapping) -> dict[str, float]:
    """The terminal's KPI at the twin's estimate: ``heater_duty``, the hot-oil heater's
    duty (the model's output there), W."""
    return {"heater_duty": float(y["heater_duty"])}


def view(model: PlantModel, asset: AssetConfig, x: Mapping, u: Mapping, d: Mapping,
         p: Mapping, y: Mapping, reference: Mapping[str, float],
         measured: Mapping[str, float]) -> TerminalView:
    """The terminal's screen at the twin's estimate (plants.views.TerminalView): the tanks
    in plan (:func:`plan_positions`) with the model's outputs (``y``) and each coil's flow
    and duty from the same balances the model integrates (:func:`_terminal`)."""
    specs = tank_specs(asset.structure.get("tanks", len(SEED_TANKS)))
    tags = _tags(len(specs))
    _, _, coils, bypass = _terminal(tags, x, u, d, p)
    tanks = [Tank(tag=tag, x=position[0], y=position[1], diameter=spec.diameter,
                  shell_height=spec.shell_height, level=float(y[f"level_{tag}"]),
                  T_bulk=float(y[f"T_bulk_{tag}"]), T_top=float(y[f"T_top_{tag}"]),
                  viscosity=float(y[f"viscosity_{tag}"]), coil_flow=float(coils[tag][0]),
                  coil_duty=float(coils[tag][1]), draw=float(d[f"draw_{tag}"]),
                  receipt=float(d[f"receipt_{tag}"]))
             for tag, spec, position in zip(tags, specs, plan_positions(specs), strict=True)]
    return TerminalView(tanks=tanks, T_supply=float(u["T_supply"]),
                        T_return=float(x["T_return"]), loop_flow=float(u["m_loop"]),
                        bypass_flow=float(bypass),
                        heater_duty=float(y["heater_duty"]),
                        stations=int(asset.structure.get("stations", 3)))
