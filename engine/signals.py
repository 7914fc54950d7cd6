"""Named signals with SI units, nominal values and engineering bounds.

Every state, manipulated input (MV), disturbance (DV), parameter and output (CV) of a
plant is a :class:`Signal`. Names are how everything outside the numerics refers to a
signal: HTTP bodies, OPC UA nodes, the Modbus map, metric labels and site files.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Iterable, Mapping, Sequence

import msgspec
import numpy as np


class Signal(msgspec.Struct, frozen=True):
    """One named quantity in SI units.

    Attributes:
        name: identifier, unique within its plant (``"T_bulk"``).
        unit: SI unit string (``"K"``, ``"kg/s"``, ``"Pa"``).
        nominal: typical operating value, also the default initial value.
        lower: lowest physically meaningful value (engineering limit).
        upper: highest physically meaningful value (engineering limit).
        description: what the signal is, for people.
        std: typical standard deviation: measurement noise for outputs, process noise
            per second for states. Zero where it does not apply.
    """

    name: str
    unit: str
    nominal: float
    lower: float = -math.inf
    upper: float = math.inf
    description: str = ""
    std: float = 0.0

    def __post_init__(self) -> None:
        if not self.lower <= self.upper:
            raise ValueError(
                f"signal {self.name!r}: lower bound {self.lower} {self.unit} is above "
                f"upper bound {self.upper} {self.unit}"
            )

    def check(self, value: float) -> float:
        """Return ``value`` as a float if finite and within bounds, else raise ValueError."""
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"signal {self.name!r}: {value!r} is not a number") from None
        if not math.isfinite(number):
            raise ValueError(f"signal {self.name!r}: {number} is not a finite number")
        if number < self.lower:
            raise ValueError(
                f"signal {self.name!r}: {number:g} {self.unit} is below its lower bound "
                f"{self.lower:g} {self.unit}"
            )
        if number > self.upper:
            raise ValueError(
                f"signal {self.name!r}: {number:g} {self.unit} is above its upper bound "
                f"{self.upper:g} {self.unit}"
            )
        return number


class SignalSet(Sequence[Signal]):
    """An ordered, name-indexed group of signals: the states, inputs, ... of a plant.

    Converts between the named mappings used at the edges and the vectors used in the
    numerics, in the set's order.
    """

    def __init__(self, signals: Iterable[Signal]) -> None:
        self._signals = tuple(signals)
        self._index = {s.name: i for i, s in enumerate(self._signals)}
        if len(self._index) != len(self._signals):
            counts = collections.Counter(s.name for s in self._signals)
            twice = [name for name, count in counts.items() if count > 1]
            raise ValueError(f"signal names must be unique, repeated: {twice}")

    def __getitem__(self, key):
        if isinstance(key, str):
            try:
                return self._signals[self._index[key]]
            except KeyError:
                raise KeyError(
                    f"unknown signal {key!r}; known signals: {', '.join(self.names)}"
                ) from None
        return self._signals[key]

    def __len__(self) -> int:
        return len(self._signals)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __reduce__(self):
        return (SignalSet, (self._signals,))

    def __repr__(self) -> str:
        return f"SignalSet({list(self.names)})"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self._signals)

    def index(self, name: str) -> int:  # type: ignore[override]
        return self._index[self[name].name]

    @property
    def nominal(self) -> np.ndarray:
        return np.array([s.nominal for s in self._signals], dtype=float)

    @property
    def lower(self) -> np.ndarray:
        return np.array([s.lower for s in self._signals], dtype=float)

    @property
    def upper(self) -> np.ndarray:
        return np.array([s.upper for s in self._signals], dtype=float)

    @property
    def std(self) -> np.ndarray:
        return np.array([s.std for s in self._signals], dtype=float)

    def vector(self, values: Mapping[str, float], default: np.ndarray | None = None) -> np.ndarray:
        """Vector in this set's order from a name -> value mapping.

        Names missing from ``values`` take ``default`` (the nominal values if None).
        Unknown names raise KeyError naming them.
        """
        unknown = set(values) - set(self._index)
        if unknown:
            raise KeyError(
                f"unknown signal(s) {sorted(unknown)}; known signals: {', '.join(self.names)}"
            )
        out = np.array(self.nominal if default is None else default, dtype=float)
        for name, value in values.items():
            out[self._index[name]] = float(value)
        return out

    def mapping(self, vector: Sequence[float] | np.ndarray) -> dict[str, float]:
        """Name -> value mapping from a vector in this set's order."""
        flat = np.asarray(vector, dtype=float).ravel()
        if flat.size != len(self._signals):
            raise ValueError(
                f"expected {len(self._signals)} values for {list(self.names)}, got {flat.size}"
            )
        return {s.name: float(v) for s, v in zip(self._signals, flat, strict=True)}

    def check(self, values: Mapping[str, float]) -> dict[str, float]:
        """Validate a partial mapping: known names, finite values, within bounds."""
        return {name: self[name].check(value) for name, value in values.items()}
