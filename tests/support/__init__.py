"""Helpers shared by the tests (real Prometheus and Alertmanager processes, ...)."""
