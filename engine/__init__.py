"""TwinLoop's core: signals, messages, plant models, clocks, the control loop.

Nothing in this package imports Ray, so it runs in a notebook or a unit test on its own.
"""
