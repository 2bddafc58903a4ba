"""What a screen may see of the app: a small Protocol, so screens never import the app module.

Screens read shared data through it (config, the link, the simulator, the controller host) and
post messages up (tui/messages.py) for everything that changes the app.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from textual.geometry import Size
    from textual.screen import Screen

    from safety import SafetyConfig
    from treadmill.config import Config
    from treadmill.link import TreadmillLink
    from treadmill.programs import Program
    from tui.controller import Controller
    from tui.host import ControllerHost
    from tui.remote import RemoteCore, RemoteHost
    from tui.targets import SimulatedDevice


class TreadmillAppLike(Protocol):
    """The app, as its screens use it."""

    config: Config
    config_path: Path | None
    safety: SafetyConfig
    programs: dict[str, Program]
    program_name: str | None
    device_arg: str | None
    simulated: bool
    simulate_requested: bool
    scan_timeout_s: float | None
    real_time: bool
    host: ControllerHost | RemoteHost  # the controller on a thread here, or in its own process
    core: Controller | RemoteCore

    @property
    def link(self) -> TreadmillLink | None: ...

    @property
    def sim(self) -> SimulatedDevice | None: ...

    # textual's App API that screens use
    @property
    def screen(self) -> Screen[Any]: ...

    @property
    def screen_stack(self) -> list[Screen[Any]]: ...

    @property
    def size(self) -> Size: ...

    def bell(self) -> None: ...

    def push_screen(self, screen: Any, callback: Any = None) -> Any: ...

    def pop_screen(self) -> Any: ...
