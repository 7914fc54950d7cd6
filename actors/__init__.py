"""Ray actors: assets, the safety gate, simulated plants, and the fleet builder."""

NAMESPACE = "twinloop"
"""Ray namespace of every named actor: ``asset:<id>``, ``plant:<id>``, ``safety:<site>``."""
