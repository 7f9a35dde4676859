"""callmeter-exporter: a Prometheus exporter for the CallMeter API."""

__version__ = "0.1.0"
