"""Dynamometer cards as they cross processes: a measured surface card per stroke, and the
card pair (surface and diagnosed downhole) the twin keeps and the historian stores.

A rod-pump controller samples the polished rod over each stroke: position (m, upward,
from the bottom of the stroke), load (N, the whole polished-rod load the load cell reads)
and the sample time (s from the stroke's start). :class:`SurfaceCard` carries one stroke;
:func:`check_card` refuses a card the diagnostic cannot use, naming the field and the
bound. The samples span one stroke without repeating its first point, so the stroke
period is ``n / (n - 1) (t[n-1] - t[0])``.
"""

from __future__ import annotations

import math

import msgspec

MIN_CARD_SAMPLES = 24
"""Fewest samples per stroke: the card's SNR (plants.rod_pump.signal_to_noise_db) needs a
fifth of them as signal harmonics and at least 8 noise bins above."""
MAX_CARD_SAMPLES = 2000
"""Most samples per stroke (controllers send 200-400); bounds an ingested message."""
MAX_CARD_LOAD = 5.0e5
"""Largest polished-rod load magnitude accepted, N (the peak_load output's bound)."""
MAX_CARD_POSITION = 20.0
"""Largest polished-rod position magnitude accepted, m (strokes are at most ~8 m)."""
CARD_PERIOD_S = (1.0, 600.0)
"""Stroke periods accepted, s (60 down to 0.1 strokes per minute)."""


class SurfaceCard(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One stroke's surface (polished-rod) card.

    Attributes:
        time: the stroke's start, UNIX seconds of the twin's clock.
        position: polished-rod position per sample, m (upward).
        load: polished-rod load per sample, N (what the load cell reads).
        sample_time: seconds from ``time`` per sample, strictly increasing.
    """

    time: float
    position: list[float]
    load: list[float]
    sample_time: list[float]

    @property
    def period(self) -> float:
        """Stroke period, s: n / (n - 1) (t[n-1] - t[0])."""
        n = len(self.sample_time)
        return n / (n - 1) * (self.sample_time[-1] - self.sample_time[0])


class CardRecord(msgspec.Struct, frozen=True):
    """A stroke's surface card and the downhole (pump) card diagnosed from it by the wave
    equation, with what the pump card says.

    Attributes:
        asset: the asset id.
        time: the stroke's start, UNIX seconds.
        period: stroke period, s.
        surface_position, surface_load: the surface card, m and N (polished-rod load),
            uniform in time over the stroke.
        downhole_position, downhole_load: the pump card at the same instants, m and N
            (load on the plunger).
        fillage: liquid fraction of the net plunger stroke, 0..1.
        fluid_pound: fillage below 70 % with an abrupt load release.
        confidence: 0..1 from the SNR of the surface card's channels.
        source: "measured" (a card received) or "predicted" (the twin's own).
    """

    asset: str
    time: float
    period: float
    surface_position: list[float]
    surface_load: list[float]
    downhole_position: list[float]
    downhole_load: list[float]
    fillage: float
    fluid_pound: bool
    confidence: float
    source: str = "measured"


def check_card(card: SurfaceCard) -> SurfaceCard:
    """``card`` if the diagnostic can use it; ValueError naming the field and the bound:
    equal lengths, MIN_CARD_SAMPLES..MAX_CARD_SAMPLES samples, finite values within
    MAX_CARD_POSITION and MAX_CARD_LOAD, sample times strictly increasing."""
    n = len(card.position)
    if not MIN_CARD_SAMPLES <= n <= MAX_CARD_SAMPLES:
        raise ValueError(f"card position: {n} samples, must be within "
                         f"{MIN_CARD_SAMPLES}..{MAX_CARD_SAMPLES}")
    for name in ("load", "sample_time"):
        if len(getattr(card, name)) != n:
            raise ValueError(f"card {name}: {len(getattr(card, name))} samples, must match "
                             f"position's {n}")
    if not math.isfinite(card.time):
        raise ValueError(f"card time: {card.time} is not finite")
    for name, bound in (("position", MAX_CARD_POSITION), ("load", MAX_CARD_LOAD)):
        for i, value in enumerate(getattr(card, name)):
            if not abs(value) <= bound:  # NaN fails too
                raise ValueError(f"card {name}[{i}]: {value} must be finite and within "
                                 f"+-{bound:g}")
    times = card.sample_time
    for i in range(n):
        if not math.isfinite(times[i]) or (i and not times[i] > times[i - 1]):
            raise ValueError(f"card sample_time[{i}]: {times[i]} must be finite and greater "
                             "than the sample before")
    low, high = CARD_PERIOD_S
    if not low <= card.period <= high:
        raise ValueError(f"card sample_time: stroke period {card.period:g} s must be within "
                         f"{low:g}..{high:g} s")
    return card
