"""An embedded CallMeter API v1 simulator for the demo and the tests."""

from .app import DEMO_KEY, Faults, Simulator
from .http import SimulatorServer, SimulatorTransport
from .world import WorldConfig

__all__ = ["DEMO_KEY", "Faults", "Simulator", "SimulatorServer", "SimulatorTransport", "WorldConfig"]
