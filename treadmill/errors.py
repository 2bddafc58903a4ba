"""Typed errors of the FTMS client, and the one-line messages users see for them."""

from __future__ import annotations

from bleak.exc import (
    BleakBluetoothNotAvailableError,
    BleakBluetoothNotAvailableReason,
    BleakDeviceNotFoundError,
    BleakError,
)

from treadmill.ftms import ControlOp, ResultCode


class TreadmillError(Exception):
    """Base of every error the client raises; `str()` is a one-line message for the user."""


class NotConnected(TreadmillError):
    def __init__(self, detail: str = "") -> None:
        super().__init__(f"the treadmill is not connected{': ' + detail if detail else ''}")


class BluetoothUnavailable(TreadmillError):
    """The system has no usable Bluetooth stack (no adapter, no BlueZ/D-Bus, switched off)."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            f"Bluetooth is not available on this machine ({detail}): plug in an adapter and "
            "start the Bluetooth service, or try the simulator with --simulate"
        )


def bluetooth_unavailable(exc: OSError) -> BluetoothUnavailable:
    """The OS-level errors bleak lets through when there is no Bluetooth stack at all (BlueZ's
    D-Bus socket missing or refusing), as one clear error."""
    return BluetoothUnavailable(f"{type(exc).__name__}: {exc.strerror or exc}")


class NotATreadmill(TreadmillError):
    """The device has no FTMS service or does not say it is a treadmill."""


class MalformedDevice(TreadmillError):
    """A characteristic the client needs could not be read or decoded."""


class IndicationTimeout(TreadmillError):
    def __init__(self, op: int, seconds: float) -> None:
        self.op = op
        self.seconds = seconds
        super().__init__(
            f"the treadmill did not answer {_op_name(op)} within {seconds:g} s"
        )


class WriteRefused(TreadmillError):
    """The control point write itself was refused with an ATT error (e.g. 0xFE: the machine
    still owes the answer to another procedure)."""

    def __init__(self, op: int, code: int | None, detail: str) -> None:
        self.op = op
        self.code = code
        super().__init__(f"the treadmill refused the write of {_op_name(op)}: {detail}")


class ControlPointError(TreadmillError):
    """The control point answered with a result other than success."""

    result: int = -1

    def __init__(self, op: int, result: int) -> None:
        self.op = op
        self.result = result
        super().__init__(f"the treadmill refused {_op_name(op)}: {_result_name(result)}")


class OpCodeNotSupported(ControlPointError):
    pass


class InvalidParameter(ControlPointError):
    pass


class OperationFailed(ControlPointError):
    pass


class ControlNotPermitted(ControlPointError):
    pass


class UnknownResult(ControlPointError):
    pass


_RESULT_ERRORS: dict[int, type[ControlPointError]] = {
    ResultCode.OP_CODE_NOT_SUPPORTED: OpCodeNotSupported,
    ResultCode.INVALID_PARAMETER: InvalidParameter,
    ResultCode.OPERATION_FAILED: OperationFailed,
    ResultCode.CONTROL_NOT_PERMITTED: ControlNotPermitted,
}


def control_point_error(op: int, result: int) -> ControlPointError:
    """The typed error for a non-success result code (unknown codes too)."""
    return _RESULT_ERRORS.get(result, UnknownResult)(op, result)


def _op_name(op: int) -> str:
    try:
        return ControlOp(op).name.lower().replace("_", " ")
    except ValueError:
        return f"op code 0x{op:02x}"


def _result_name(result: int) -> str:
    try:
        return ResultCode(result).name.lower().replace("_", " ")
    except ValueError:
        return f"unknown result 0x{result:02x}"


def describe_bluetooth_error(exc: BaseException, address: str | None = None) -> str:
    """A one-line message saying what went wrong with Bluetooth and what to do next."""
    if isinstance(exc, TreadmillError):
        return str(exc)
    if isinstance(exc, BleakDeviceNotFoundError):
        where = f" at {address}" if address else ""
        return (
            f"no treadmill found{where}: switch it on, make sure no other app (or its console "
            "pairing) holds it, and run `treadmill scan` to see what is in range"
        )
    if isinstance(exc, BleakBluetoothNotAvailableError):
        if exc.reason == BleakBluetoothNotAvailableReason.POWERED_OFF:
            return "Bluetooth is switched off: turn it on and try again"
        if exc.reason == BleakBluetoothNotAvailableReason.DENIED_BY_USER:
            return "this program may not use Bluetooth: allow it in the system settings"
        return (
            "no usable Bluetooth adapter found: plug one in, or try the simulator "
            "with --simulate"
        )
    if isinstance(exc, BleakError):
        text = str(exc) or type(exc).__name__
        lowered = text.lower()
        if "adapter" in lowered or "no bluetooth" in lowered or "org.bluez" in lowered:
            return (
                f"no usable Bluetooth adapter ({text}): plug one in and start bluetoothd, "
                "or try the simulator with --simulate"
            )
        return f"Bluetooth error: {text}"
    if isinstance(exc, TimeoutError):
        return "the treadmill did not answer in time: move closer, or switch it off and on"
    if isinstance(exc, FileNotFoundError | PermissionError) and "dbus" in str(exc).lower():
        return "Bluetooth is not available (no D-Bus system bus): is bluetoothd running?"
    return f"{type(exc).__name__}: {exc}"
