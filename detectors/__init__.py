"""Detection: the tool catalog, rules and detectors, risk fusion. Imports only ``schemas``."""
