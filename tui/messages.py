"""Messages posted up to the app: screens asking for navigation or a connection, and the
controller reporting what happened on its own (a dropped link, an idle Stop, a watchdog stop).

The controller posts from its own thread: textual's `post_message` is thread-safe.
"""

from __future__ import annotations

from textual.message import Message

from treadmill.link import StopOutcome
from treadmill.mqtt.bridge import BridgeStatus
from treadmill.programs import Program
from tui.targets import Target


class ConnectTo(Message):
    """Connect to this treadmill (then show the programs)."""

    def __init__(self, target: Target) -> None:
        super().__init__()
        self.target = target


class ShowDevices(Message):
    """Back to the device screen (the bottom of the stack)."""


class ShowPrograms(Message):
    """The program picker, over the device screen."""


class ShowHistory(Message):
    """The recorded sessions, over the picker."""


class StartProgram(Message):
    """The picker's Enter: the checklist first if needed, then the session."""

    def __init__(self, program: Program) -> None:
        super().__init__()
        self.program = program


class LinkDown(Message):
    """The connected treadmill dropped the link while no session was running."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


class LinkNotice(Message):
    """One line of news from the Bluetooth link (e.g. pairing with the treadmill now)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class StopDone(Message):
    """An idle Stop (no session running) was answered, or failed."""

    def __init__(self, outcome: StopOutcome) -> None:
        super().__init__()
        self.outcome = outcome


class MqttState(Message):
    """The MQTT bridge connected, is connecting, or is down (and why)."""

    def __init__(self, status: BridgeStatus) -> None:
        super().__init__()
        self.status = status


class MqttRefused(Message):
    """A remote command from MQTT was refused (only Stop and Pause, only fresh ones)."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


class RecordingTrouble(Message):
    """The session's recording stopped (a full disk, a read-only folder; the session goes on),
    or, as information, where [export] auto wrote its files."""

    def __init__(self, message: str, severity: str = "warning") -> None:
        super().__init__()
        self.message = message
        self.severity = severity


class WatchdogStop(Message):
    """The controller stopped the belt on its own because the screen stopped answering."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


class QuitRequested(Message):
    """A signal reached the controller process (tui/split.py): it has sent Stop; leave as
    after a signal here (wait for the Stop to be written, then exit)."""


class ControllerGone(Message):
    """The controller process ended: nothing here can reach the treadmill any more."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason
