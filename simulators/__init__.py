"""Simulated FTMS treadmills exposed as a bleak backend (see treadmill.VirtualTreadmill)."""

from simulators.backend import SimulatedBleakClient, SimulatedBleakScanner
from simulators.faults import Fault, FaultKind, parse_fault
from simulators.model import MachineState, TreadmillModel
from simulators.profiles import PROFILES, Profile, Quirk, get_profile, profile_names
from simulators.treadmill import VirtualTreadmill

__all__ = [
    "PROFILES",
    "Fault",
    "FaultKind",
    "MachineState",
    "Profile",
    "Quirk",
    "SimulatedBleakClient",
    "SimulatedBleakScanner",
    "TreadmillModel",
    "VirtualTreadmill",
    "get_profile",
    "parse_fault",
    "profile_names",
]
