"""The worker's faust agents and timers, one per module, each with ``register(monitor)``."""
