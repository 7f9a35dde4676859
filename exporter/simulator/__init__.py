"""An embedded CallMeter API v1 simulator for the demo and the tests."""

from .app import DEMO_KEY, DEMO_KEY_LIMIT, Simulator
from .config import WorldConfig
from .faults import Faults
from .http import SimulatorServer, SimulatorTransport

__all__ = ["DEMO_KEY", "DEMO_KEY_LIMIT", "Faults", "Simulator", "SimulatorServer", "SimulatorTransport", "WorldConfig"]
