"""The numba kernels of plants.rod_pump_wave (arguments and results there, beside the
plain-NumPy reference of each), in a module of their own that plants.rod_pump_wave imports
on first use: numba is loaded only in the processes that run them.

``predict``: the lumped-mass wave equation of the rod string driven by the surface
position, the pump's valve action at its bottom (surface load, pump position and load
over the last stroke). ``diagnose``: the downhole card from the surface card (the
finite differences marching down each taper section, Everitt & Jennings).
"""

from __future__ import annotations

import numba
import numpy as np

from plants import rod_pump_wave

_contact = numba.njit(cache=True)(rod_pump_wave._contact)
_pump_load = numba.njit(cache=True)(rod_pump_wave._pump_load)


@numba.njit(cache=True)
def predict(z, strokes, dt, k, m, c, F_o, k_p, f, eps):
    n_per = z.size
    N = m.size - 1
    u = np.full(N + 1, z[0])  # at rest, unstrained, before the first stroke
    u_old = u.copy()
    u_new = u.copy()
    top = np.zeros(n_per)
    pump_u = np.zeros(n_per)
    pump_F = np.zeros(n_per)
    load = 0.0
    up = True
    z_bot = z[0]
    z_top = z[0]
    z_low = z[0]
    g = c * dt / 2
    first_recorded = (strokes - 1) * n_per
    for n in range(strokes * n_per):
        # plunger reversals (with hysteresis eps) and valve action at the pump
        if up:
            if u[N] > z_top:
                z_top = u[N]
            elif u[N] < z_top - eps:
                up = False
                z_low = u[N]
        else:
            if u[N] < z_low:
                z_low = u[N]
            elif u[N] > z_low + eps:
                up = True
                z_bot = z_low
                z_top = u[N]
        load = _pump_load(load, u[N], u_old[N], _contact(z_bot, z_top, f, F_o / k_p), F_o, k_p)
        # central-difference step of the lumped-mass chain
        z_prev = z[(n - 1) % n_per]
        z_next = z[(n + 1) % n_per]
        for i in range(1, N + 1):
            force = k[i - 1] * (u[i - 1] - u[i])
            if i < N:
                force -= k[i] * (u[i] - u[i + 1])
            else:
                force -= load
            u_new[i] = (2 * u[i] - (1 - g) * u_old[i] + dt * dt * force / m[i]) / (1 + g)
        u_new[0] = z_next
        if n >= first_recorded:
            j = n - first_recorded
            acceleration = (z_next - 2 * z[n % n_per] + z_prev) / (dt * dt)
            velocity = (z_next - z_prev) / (2 * dt)
            top[j] = k[0] * (u[0] - u[1]) + m[0] * (acceleration + c * velocity)
            pump_u[j] = u[N]
            pump_F[j] = load
        for i in range(N + 1):
            u_old[i] = u[i]
            u[i] = u_new[i]
    return top, pump_u, pump_F


@numba.njit(cache=True)
def diagnose(u0, F0, dt, c, n_s, dx, EA, rhoA, a):
    n = u0.size
    above = u0.copy()
    force = F0.copy()
    node = np.empty(n)
    below = np.empty(n)
    for s in range(n_s.size):
        half = rhoA[s] * dx[s] / 2
        r2 = (dx[s] / (a[s] * dt)) ** 2
        g = c * dt / 2
        # node 2 from Hooke's law on the tension below the top node's half cell
        for t in range(n):
            tp, tm = (t + 1) % n, (t - 1) % n
            inertia = (above[tp] - 2 * above[t] + above[tm]) / (dt * dt) \
                + c * (above[tp] - above[tm]) / (2 * dt)
            node[t] = above[t] - (force[t] - half * inertia) * dx[s] / EA[s]
        # march down the section
        for _ in range(1, n_s[s]):
            for t in range(n):
                tp, tm = (t + 1) % n, (t - 1) % n
                below[t] = 2 * node[t] - above[t] + r2 * (
                    node[tp] - 2 * node[t] + node[tm] + g * (node[tp] - node[tm]))
            for t in range(n):
                above[t] = node[t]
                node[t] = below[t]
        # load leaving the section: tension of the last segment minus its half cell
        for t in range(n):
            tp, tm = (t + 1) % n, (t - 1) % n
            inertia = (node[tp] - 2 * node[t] + node[tm]) / (dt * dt) \
                + c * (node[tp] - node[tm]) / (2 * dt)
            force[t] = EA[s] * (above[t] - node[t]) / dx[s] - half * inertia
            above[t] = node[t]
    return above, force
