"""What the controller process shows the UI process: plain, picklable snapshots of the link, the
runner and the controller, and the UI-side mirrors that screens read as if they were the real
objects (the same attribute names, so a screen never knows which process the controller is in).

Snapshots are taken on the controller's loop (`*.of(...)`), sent by `tui/serve.py` and applied
by `tui/remote.py`. They are for showing, never for deciding: every decision that matters
(whether a Stop can be sent, pause or resume, whether a turn-around is awaited) is made again on
the controller's side, against the real objects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tui.session_state import SafetyView

if TYPE_CHECKING:
    from treadmill.events import TelemetrySample
    from treadmill.ftms import DeviceInfo
    from treadmill.link import TreadmillLink
    from treadmill.programs import WalkItem
    from treadmill.session import SessionRunner


@dataclass(frozen=True)
class RequestAt:
    """A key's request, built on the controller's side at its own time: `kind(t, *args)` (a
    lambda can't cross a process boundary; a request class and its arguments can)."""

    kind: Callable[..., Any]
    args: tuple[Any, ...] = ()

    def __call__(self, t: float) -> Any:
        return self.kind(t, *self.args)


@dataclass(frozen=True)
class LinkState:
    key: int  # one per connection: a new connect is a new mirror
    address: str
    name: str
    connected: bool
    simulated: bool
    can_stop: bool
    belt_speed_kmh: float | None
    last_sample: TelemetrySample | None
    info: DeviceInfo | None

    @classmethod
    def of(cls, link: TreadmillLink) -> LinkState:
        return cls(key=id(link), address=link.address, name=link.name, connected=link.connected,
                   simulated=link.simulated, can_stop=link.can_stop,
                   belt_speed_kmh=link.belt_speed_kmh, last_sample=link.last_sample,
                   info=link.info)


@dataclass(frozen=True)
class RunnerState:
    governor: SafetyView | None  # the governor's read-only view (it reads as the governor does)
    waiting_for_confirmation: bool
    current_step: WalkItem | None
    step_remaining_s: float | None

    @classmethod
    def of(cls, runner: SessionRunner) -> RunnerState:
        governor = runner.governor
        return cls(governor=None if governor is None else SafetyView.from_governor(governor),
                   waiting_for_confirmation=runner.waiting_for_confirmation,
                   current_step=runner.current_step, step_remaining_s=runner.step_remaining_s)


@dataclass(frozen=True)
class SimState:
    name: str
    address: str


@dataclass(frozen=True)
class CoreState:
    """Everything a screen reads of the controller, at one instant of the controller's clock."""

    loop_time: float  # the controller loop's time ...
    monotonic: float  # ... at this wall-clock instant (CLOCK_MONOTONIC, one machine)
    speedup: float  # the controller's clock rate (1: the wall clock)
    link: LinkState | None
    sim: SimState | None
    runners: dict[int, RunnerState]  # by session id: the sessions the UI still follows
    session_active: bool
    can_stop: bool
    last_session_id: int | None
    record: bool


# ---- the UI side's mirrors ------------------------------------------------------------------


class ClientMirror:
    """What the picker reads of a link's client (`treadmill.session.machine_limits`)."""

    def __init__(self) -> None:
        self.info: DeviceInfo | None = None


class LinkMirror:
    """A `TreadmillLink` as the screens read it; one object per connection, updated in place."""

    def __init__(self, state: LinkState) -> None:
        self.client = ClientMirror()
        self.on_sample: Callable[[TelemetrySample], None] | None = None  # unused across
        self.apply(state)

    def apply(self, state: LinkState) -> None:
        self.key = state.key
        self.address = state.address
        self.name = state.name
        self.connected = state.connected
        self.simulated = state.simulated
        self.can_stop = state.can_stop
        self.belt_speed_kmh = state.belt_speed_kmh
        self.last_sample = state.last_sample
        self.info = state.info
        self.client.info = state.info


@dataclass
class RunnerMirror:
    """A `SessionRunner` as the session screen reads it."""

    governor: SafetyView | None = None
    waiting_for_confirmation: bool = False
    current_step: WalkItem | None = None
    step_remaining_s: float | None = None

    def apply(self, state: RunnerState) -> None:
        self.governor = state.governor
        self.waiting_for_confirmation = state.waiting_for_confirmation
        self.current_step = state.current_step
        self.step_remaining_s = state.step_remaining_s
