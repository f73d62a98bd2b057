"""Wire contracts: action events in, alerts and kill signals out. Imports nothing of ours."""
