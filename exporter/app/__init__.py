"""Wiring and the commands: Exporter.build, serve, --once, --show-schedule and the demo."""
