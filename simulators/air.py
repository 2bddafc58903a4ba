"""The air between simulated Bluetooth controllers (ATT transport): one Bumble local link per
event loop, with connection events every connection interval.

Bumble's `LocalLink` hands every ACL packet to the peer at once. Real LE links move data only
at connection events, one every connection interval (7.5 ms to 4 s; 30–50 ms is what phones and
BlueZ pick). `AirLink` delivers each packet at the next connection event after it was sent,
in order, so a write and its answer cost about two intervals, as on a real link. Advertising
and link-layer control packets (connect, disconnect, encryption) keep Bumble's timing.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import weakref

from bumble import core, hci
from bumble.controller import Controller
from bumble.device import Device
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink

DEFAULT_CONNECTION_INTERVAL_MS = 30.0
MIN_CONNECTION_INTERVAL_MS = 7.5  # Bluetooth Core Vol 6 Part B 4.5.1: 7.5 ms to 4 s
MAX_CONNECTION_INTERVAL_MS = 4000.0


def check_connection_interval(ms: float) -> float:
    """The interval in ms, or ValueError with the allowed range."""
    if not (MIN_CONNECTION_INTERVAL_MS <= ms <= MAX_CONNECTION_INTERVAL_MS) or math.isnan(ms):
        raise ValueError(
            f"connection interval must be {MIN_CONNECTION_INTERVAL_MS:g}–"
            f"{MAX_CONNECTION_INTERVAL_MS:g} ms, not {ms:g}"
        )
    return ms


_bumble_log = logging.getLogger("bumble")


class QuietController(Controller):
    """Bumble's virtual controller, minus the cost of a debug line per packet: Bumble builds
    each one with an f-string (colours and every field) even when DEBUG is off, a third of a
    simulated session's time. With DEBUG on (`--debug`), Bumble's own methods run."""

    def on_hci_packet(self, packet: hci.HCI_Packet) -> None:
        if _bumble_log.isEnabledFor(logging.DEBUG):
            super().on_hci_packet(packet)
            return
        match packet:
            case hci.HCI_Command():
                self.on_hci_command_packet(packet)
            case hci.HCI_AclDataPacket():
                self.on_hci_acl_data_packet(packet)
            case _:
                super().on_hci_packet(packet)

    def send_hci_packet(self, packet: hci.HCI_Packet) -> None:
        if _bumble_log.isEnabledFor(logging.DEBUG):
            super().send_hci_packet(packet)
            return
        if self.host:
            asyncio.get_running_loop().call_soon(self.host.on_packet, bytes(packet))


class QuietHost(Host):
    """Bumble's host, minus the same per-packet debug line (see QuietController), and calm
    about the answer to an HCI command whose waiter was cancelled (a simulator closed or a
    loop ending mid-command: Bumble would raise InvalidStateError in a loop callback)."""

    def on_command_processed(
        self, event: hci.HCI_Command_Complete_Event | hci.HCI_Command_Status_Event
    ) -> None:
        pending = self.pending_response
        if pending is not None and pending.done():
            return
        super().on_command_processed(event)

    def send_hci_packet(self, packet: hci.HCI_Packet) -> None:
        if _bumble_log.isEnabledFor(logging.DEBUG) or self.snooper:
            super().send_hci_packet(packet)
            return
        if self.hci_sink:
            self.hci_sink.on_packet(bytes(packet))

    def on_hci_packet(self, packet: hci.HCI_Packet) -> None:
        if _bumble_log.isEnabledFor(logging.DEBUG) or self.snooper:
            super().on_hci_packet(packet)
            return
        match packet:
            case hci.HCI_Event():
                self.on_hci_event_packet(packet)
            case hci.HCI_AclDataPacket():
                self.on_hci_acl_data_packet(packet)
            case _:
                super().on_hci_packet(packet)


class AirLink(LocalLink):
    """A local link whose ACL data waits for the next connection event (see module docstring).

    The interval belongs to the peripheral (the simulated treadmill chooses it, as a real one
    does through its preferred connection parameters); a packet to or from a controller with
    no interval set goes at once.
    """

    def __init__(self) -> None:
        super().__init__()
        self._interval_s: dict[Controller, float] = {}
        self._last_delivery: dict[tuple[int, int], float] = {}
        self.acl_packets = 0  # every ACL packet on the air, for tests and benchmarks
        self.on_acl: list[object] = []  # callables(sender, destination, data) for probes

    def set_interval(self, controller: Controller, interval_ms: float) -> None:
        self._interval_s[controller] = check_connection_interval(interval_ms) / 1000.0

    def remove_controller(self, controller: Controller) -> None:
        self._interval_s.pop(controller, None)
        if controller in self.controllers:
            super().remove_controller(controller)

    def send_acl_data(
        self,
        sender_controller: Controller,
        destination_address: hci.Address,
        transport: core.PhysicalTransport,
        data: bytes,
    ) -> None:
        destination = self.find_le_controller(destination_address)
        if destination is None or transport != core.PhysicalTransport.LE:
            super().send_acl_data(sender_controller, destination_address, transport, data)
            return
        self.acl_packets += 1
        for probe in self.on_acl:
            probe(sender_controller, destination, data)  # type: ignore[operator]
        interval = self._interval_s.get(sender_controller) or self._interval_s.get(destination)
        loop = asyncio.get_running_loop()
        source_address = sender_controller.random_address

        def deliver() -> None:
            destination.on_link_acl_data(source_address, transport, data)

        if not interval:
            loop.call_soon(deliver)
            return
        now = loop.time()
        # The next connection event after now (events at whole multiples of the interval),
        # never before a packet sent earlier in the same direction.
        event = (math.floor(now / interval + 1e-9) + 1) * interval
        key = (id(sender_controller), id(destination))
        at = max(event, self._last_delivery.get(key, 0.0))
        self._last_delivery[key] = at
        loop.call_at(at, deliver)


_airs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AirLink] = (
    weakref.WeakKeyDictionary()
)
_addresses = itertools.count(1)


def air() -> AirLink:
    """The air of the running event loop (one per loop, like one room per test)."""
    loop = asyncio.get_running_loop()
    link = _airs.get(loop)
    if link is None:
        link = _airs[loop] = AirLink()
    return link


def new_device(name: str, address: str, interval_ms: float | None = None) -> Device:
    """A Bumble device (quiet controller and host) on this loop's air at a random static
    `address`, not powered on yet; `interval_ms`: the connection interval it sets."""
    link = air()
    bumble_address = hci.Address(address, hci.Address.RANDOM_DEVICE_ADDRESS)
    controller = QuietController(name, link=link, public_address=address)
    controller.random_address = bumble_address
    if interval_ms is not None:
        link.set_interval(controller, interval_ms)
    host = QuietHost(controller, AsyncPipeSink(controller))
    return Device(name=name, address=bumble_address, host=host)


def controller_of(device: Device) -> Controller | None:
    controller = getattr(device.host, "controller", None)
    return controller if isinstance(controller, Controller) else None


def central_address() -> str:
    """A fresh random static address for a simulated central (top two bits set)."""
    n = next(_addresses)
    return "C2:" + ":".join(f"{(n >> shift) & 0xFF:02X}" for shift in (32, 24, 16, 8, 0))
