"""The virtual radio: which simulated peripherals are on the air, and the link API to them."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

if TYPE_CHECKING:
    from simulators.gatt import CharacteristicSpec


class Central(Protocol):
    """What a peripheral calls on the connected client backend."""

    def link_deliver(self, uuid: str, data: bytes) -> None:
        """A notification or indication arrived (called from the event loop)."""

    def link_lost(self) -> None:
        """The peripheral dropped the connection (unsolicited disconnect)."""


@runtime_checkable
class Peripheral(Protocol):
    """What the bleak backend needs from a simulated device."""

    address: str
    name: str
    rssi: int

    @property
    def advertising(self) -> bool: ...

    @property
    def closed(self) -> bool: ...

    @property
    def att_latency_s(self) -> float: ...

    def advertisement(self) -> tuple[BLEDevice, AdvertisementData]: ...

    def gatt_table(self) -> Sequence[CharacteristicSpec]: ...

    def link_attach(self, central: Central) -> None: ...

    def link_detach(self, central: Central) -> list[asyncio.Task[None]]: ...

    def link_read(self, uuid: str) -> bytes: ...

    def link_write(self, uuid: str, data: bytes, *, encrypted: bool = False) -> None: ...

    def link_cccd(self, uuid: str) -> int: ...

    def link_set_cccd(self, uuid: str, value: int, *, encrypted: bool = False) -> None: ...


# Weak: a peripheral registers itself when created and leaves with close() or when collected.
_peripherals: weakref.WeakValueDictionary[str, Peripheral] = weakref.WeakValueDictionary()


def register(peripheral: Peripheral) -> None:
    """Put a peripheral on the air; its address must not be taken by a live one."""
    key = peripheral.address.upper()
    existing = _peripherals.get(key)
    if existing is not None and existing is not peripheral and not existing.closed:
        raise ValueError(f"address {peripheral.address} is already used by another simulator")
    _peripherals[key] = peripheral


def unregister(peripheral: Peripheral) -> None:
    key = peripheral.address.upper()
    if _peripherals.get(key) is peripheral:
        del _peripherals[key]


def lookup(address: str) -> Peripheral | None:
    """The live peripheral with this address (any case), if any."""
    peripheral = _peripherals.get(address.upper())
    return None if peripheral is None or peripheral.closed else peripheral


def advertisers() -> list[Peripheral]:
    """Every registered peripheral that is advertising now (not connected, not closed)."""
    return [p for p in list(_peripherals.values()) if p.advertising]
