"""Devices: the treadmills in range (name, address, signal), the remembered ones, pair/forget,
connect. Scanning runs in a worker; with the simulator, the simulated radio is scanned."""

from __future__ import annotations

import asyncio
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from treadmill.config import ConfigError, PairedDevice, normalize_address, save_config
from treadmill.errors import describe_bluetooth_error
from treadmill.scan import FoundTreadmill
from tui.messages import ConnectTo, ShowPrograms
from tui.protocol import TreadmillAppLike
from tui.targets import REAL_SCAN_S, SIM_SCAN_S, Target
from tui.text import one_line
from tui.widgets.top_bar import TopBar


class DeviceScreen(Screen[None]):
    """The bottom of the screen stack: everything starts (and falls back) here."""

    CSS_PATH = "device.tcss"
    AUTO_FOCUS = "#devices"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "connect", "Connect", priority=True),
        Binding("s", "scan", "Rescan"),
        Binding("r", "scan_real", "Bluetooth"),
        Binding("p", "pair", "Pair"),
        Binding("f", "forget", "Forget"),
        Binding("escape", "programs", "Programs", show=False),
    ]

    app: TreadmillAppLike  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.found: dict[str, FoundTreadmill] = {}
        self.found_simulated: set[str] = set()
        self.scanning = False
        self._status = ""
        self._cursor_chosen = False

    def compose(self) -> ComposeResult:
        app = self.app
        yield TopBar("Treadmills", device=self.mode_text(), simulated=app.simulated,
                     id="top-bar")
        with Vertical(id="device-body"):
            yield Static(self.intro_text(), id="device-intro")
            yield DataTable(id="devices", cursor_type="row", zebra_stripes=True)
            yield Static(self._status, id="device-status", markup=False)
        yield Footer(compact=True)

    def mode_text(self) -> str:
        app = self.app
        if app.simulated and not app.simulate_requested:
            return "no treadmill paired: using the built-in simulator"
        if app.simulated:
            return "built-in simulator (--simulate)"
        return "Bluetooth"

    def intro_text(self) -> str:
        lines = ["Choose a treadmill and press Enter to connect. P remembers it (pairs), "
                 "F forgets it."]
        if self.app.simulated:
            lines.append("R scans Bluetooth for a real treadmill.")
        return "\n".join(lines)

    def on_screen_resume(self) -> None:
        if self.query("#devices"):
            self.refresh_rows()  # the link may have come or gone meanwhile

    def on_mount(self) -> None:
        table = self.query_one("#devices", DataTable)
        table.add_column("", key="mark", width=1)
        table.add_column("Name", key="name", width=22)
        table.add_column("Address", key="address", width=17)
        table.add_column("Signal", key="rssi", width=7)
        table.add_column("", key="state", width=18)
        self.refresh_rows()
        self.action_scan()

    # ---- rows -----------------------------------------------------------------------------

    def refresh_rows(self) -> None:
        """Scan results first (strongest signal first), then remembered ones not in range."""
        app = self.app
        table = self.query_one("#devices", DataTable)
        selected = self.selected_address() if self._cursor_chosen else self.preferred_address()
        table.clear()
        rows: list[tuple[str, str, str, str, str]] = []
        link = app.link
        seen: set[str] = set()
        if link is not None and link.connected:
            rows.append(("●", link.name, link.address, "", self._state_text(link.address)))
            seen.add(link.address)
        for found in sorted(self.found.values(), key=lambda f: -f.rssi):
            if found.address in seen:
                continue
            seen.add(found.address)
            rows.append(("", found.name, found.address, f"{found.rssi} dBm",
                         self._state_text(found.address)))
        for paired in app.config.devices:
            if paired.address in seen:
                continue
            seen.add(paired.address)
            rows.append(("", paired.name or "?", paired.address, "-",
                         self._state_text(paired.address)))
        if app.device_arg and _is_address(app.device_arg):
            address = normalize_address(app.device_arg)
            if address not in seen:
                seen.add(address)
                rows.append(("", address, address, "-", "--device"))
        for row in rows:
            table.add_row(*row, key=row[2])
        if selected is not None and selected in seen:
            table.move_cursor(row=table.get_row_index(selected))
        self._cursor_chosen = bool(self.found)  # from now on, keep what the person chose
        if not rows:
            self.set_status("Scanning..." if self.scanning else
                            "No treadmill found: is it on and not connected to another app? "
                            "S scans again.")

    def _state_text(self, address: str) -> str:
        app = self.app
        parts = []
        if app.link is not None and app.link.address == address and app.link.connected:
            parts.append("connected")
        if app.sim is not None and address == app.sim.address:
            parts.append("simulated")
        paired = app.config.find(address) if _is_address(address) else None
        if paired is not None:
            parts.append("default" if app.config.default_device == address else "paired")
        return ", ".join(parts)

    def preferred_address(self) -> str | None:
        """The row to start on: the connected one, the simulator, or the default."""
        app = self.app
        if app.link is not None and app.link.connected:
            return app.link.address
        if app.simulated and app.sim is not None:
            return app.sim.address
        return app.config.default_device

    def selected_address(self) -> str | None:
        table = self.query_one("#devices", DataTable)
        if table.row_count == 0:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return row_key.value

    def set_status(self, text: str) -> None:
        self._status = text
        if self.is_mounted:
            self.query_one("#device-status", Static).update(text)

    # ---- scanning --------------------------------------------------------------------------

    def action_scan(self) -> None:
        app = self.app
        simulated = app.simulated and app.sim is not None
        if not simulated and not app.real_time:
            self.set_status("Real Bluetooth needs real time: run without --speedup.")
            return
        timeout = app.scan_timeout_s or (SIM_SCAN_S if simulated else REAL_SCAN_S)
        self.run_scan(timeout, simulated)

    def action_scan_real(self) -> None:
        app = self.app
        if not app.real_time:
            self.notify("Real Bluetooth needs real time: run without --speedup.",
                        severity="error")
            return
        self.run_scan(app.scan_timeout_s or REAL_SCAN_S, False)

    @work(group="scan", exclusive=True)
    async def run_scan(self, timeout: float, simulated: bool) -> None:
        host = self.app.host
        self.scanning = True
        what = "the simulated radio" if simulated else "Bluetooth"
        self.set_status(f"Scanning {what} for {timeout:g} s...")
        try:
            # On the controller's loop: the radio (and the simulator) live there.
            found = await asyncio.wrap_future(host.call(host.controller.scan, timeout, simulated))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # no adapter, BlueZ missing, ...: one line
            self.scanning = False
            message = one_line(describe_bluetooth_error(exc))
            self.set_status(f"Scan failed: {message}")
            self.notify(message, title="Scan failed", severity="error", markup=False,
                        timeout=10)
            return
        self.scanning = False
        for treadmill in found:
            self.found[treadmill.address] = treadmill
            if simulated:
                self.found_simulated.add(treadmill.address)
        self.refresh_rows()
        count = len(found)
        self.set_status(f"{count} treadmill{'s' if count != 1 else ''} found on {what}."
                        if count else f"No treadmill found on {what}.")

    # ---- actions on the selected row -------------------------------------------------------

    def target_for(self, address: str) -> Target:
        app = self.app
        if app.sim is not None and address == app.sim.address:
            return Target(name=app.sim.name, address=address, simulated=True)
        found = self.found.get(address)
        if found is not None:
            return Target(name=found.name, address=address, device=found.device)
        paired = app.config.find(address)
        return Target(name=(paired.name if paired and paired.name else address), address=address)

    def action_connect(self) -> None:
        address = self.selected_address()
        if address is None:
            self.notify("No treadmill to connect to: S scans again.", severity="warning")
            return
        self.post_message(ConnectTo(self.target_for(address)))

    def action_programs(self) -> None:
        link = self.app.link
        if link is not None and link.connected:
            self.post_message(ShowPrograms())

    def action_pair(self) -> None:
        app = self.app
        address = self.selected_address()
        if address is None:
            return
        if address in self.found_simulated or (app.sim is not None and address == app.sim.address):
            self.notify("The simulator needs no pairing: it is always there.",
                        severity="warning")
            return
        target = self.target_for(address)
        app.config.remember(PairedDevice(address=address, name=target.name))
        app.config.default_device = address
        if self._save(f"Paired {target.name}: it is now the default treadmill."):
            self.refresh_rows()

    def action_forget(self) -> None:
        app = self.app
        address = self.selected_address()
        if address is None or not _is_address(address) or app.config.find(address) is None:
            self.notify("That treadmill is not remembered.", severity="warning")
            return
        app.config.forget(address)
        if self._save(f"Forgot {address}."):
            self.refresh_rows()

    def _save(self, done: str) -> bool:
        try:
            save_config(self.app.config, self.app.config_path)
        except (ConfigError, OSError) as exc:
            self.notify(one_line(str(exc)), title="Could not save", severity="error",
                        markup=False)
            return False
        self.notify(done)
        return True


def _is_address(text: str) -> bool:
    try:
        normalize_address(text)
    except ConfigError:
        return False
    return True
