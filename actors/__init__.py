"""Ray actors: asset shards, the safety gate, plant shards, gateways, and the fleet builder."""

NAMESPACE = "twinloop"
"""Ray namespace of every named actor: ``shard:<n>``, ``plants:<n>``, ``safety:<site>``."""
