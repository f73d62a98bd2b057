"""The stream worker and its tools: Faust app, sinks, kill signals, CLI."""
