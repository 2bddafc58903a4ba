"""Discovery: find FTMS treadmills in range (or simulated ones) with name, address and signal."""

from __future__ import annotations

from dataclasses import dataclass, field

from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner

from treadmill import ftms
from treadmill.errors import bluetooth_unavailable


@dataclass(frozen=True)
class FoundTreadmill:
    """One advertising FTMS machine that is (or may be) a treadmill."""

    name: str
    address: str
    rssi: int
    machine_types: tuple[str, ...]
    device: BLEDevice = field(compare=False, repr=False)

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "address": self.address,
            "rssi": self.rssi,
            "machine_types": list(self.machine_types),
        }


def treadmill_from_advertisement(
    device: BLEDevice, adv: AdvertisementData
) -> FoundTreadmill | None:
    """A FoundTreadmill if the advertisement is an FTMS treadmill (or FTMS of unknown type)."""
    uuids = {u.lower() for u in adv.service_uuids}
    service_data = adv.service_data.get(ftms.FTMS_SERVICE)
    if ftms.FTMS_SERVICE not in uuids and service_data is None:
        return None
    machine = ftms.decode_ftms_service_data(service_data) if service_data else None
    if machine is not None and not machine.is_treadmill:
        return None  # a bike or rower: not ours to drive
    types = tuple(machine.type_names) if machine is not None else ("unknown",)
    return FoundTreadmill(
        name=adv.local_name or device.name or device.address,
        address=device.address,
        rssi=adv.rssi,
        machine_types=types,
        device=device,
    )


async def scan(
    timeout: float = 5.0, *, backend: type[BaseBleakScanner] | None = None
) -> list[FoundTreadmill]:
    """Listen for `timeout` seconds; treadmills sorted by signal strength, strongest first."""
    try:
        seen = await BleakScanner.discover(timeout=timeout, return_adv=True, backend=backend)
    except (FileNotFoundError, ConnectionRefusedError, PermissionError) as exc:
        raise bluetooth_unavailable(exc) from exc
    found = [
        t for device, adv in seen.values() if (t := treadmill_from_advertisement(device, adv))
    ]
    return sorted(found, key=lambda t: -t.rssi)
