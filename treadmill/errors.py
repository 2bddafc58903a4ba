"""Typed errors of the FTMS client, and the one-line messages users see for them."""

from __future__ import annotations

import errno

from bleak.exc import (
    PROTOCOL_ERROR_CODES,
    BleakBluetoothNotAvailableError,
    BleakBluetoothNotAvailableReason,
    BleakCharacteristicNotFoundError,
    BleakDBusError,
    BleakDeviceNotFoundError,
    BleakError,
    BleakGATTProtocolError,
    BleakGATTProtocolErrorCode,
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
        # `detail` is often str() of a bleak error: a tuple repr nobody should have to read.
        self._detail = detail
        super().__init__(self._message(_plain(detail)))

    def _message(self, detail: str) -> str:
        reason = _gatt_reason(self.code) if self.code is not None else detail
        return (f"the treadmill refused the write of {_op_name(self.op)} ({reason}): "
                f"{_gatt_advice(self.code)}")

    def __str__(self) -> str:
        # Raised `from` the bleak error: say what that error says, not its args' repr.
        if self.code is None and isinstance(self.__cause__, BaseException):
            return self._message(_args_text(self.__cause__))
        return super().__str__()


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


_AUTH_CODES = frozenset({
    BleakGATTProtocolErrorCode.INSUFFICIENT_AUTHENTICATION,
    BleakGATTProtocolErrorCode.INSUFFICIENT_AUTHORIZATION,
    BleakGATTProtocolErrorCode.INSUFFICIENT_ENCRYPTION_KEY_SIZE,
    BleakGATTProtocolErrorCode.INSUFFICIENT_ENCRYPTION,
})
_ACCESS_CODES = frozenset({
    BleakGATTProtocolErrorCode.READ_NOT_PERMITTED,
    BleakGATTProtocolErrorCode.WRITE_NOT_PERMITTED,
    BleakGATTProtocolErrorCode.WRITE_REQUEST_REJECTED,
})
_RETRY = "switch the treadmill off and on, then try again (--debug shows the details)"


def _gatt_reason(code: int) -> str:
    name = PROTOCOL_ERROR_CODES.get(code, "unknown code").lower()
    return f"Bluetooth error 0x{code:02X}, {name}"


def _gatt_advice(code: int | None) -> str:
    if code == BleakGATTProtocolErrorCode.PROCEDURE_ALREADY_IN_PROGRESS:
        return ("it is still busy with an earlier command; wait a moment and try again, or "
                "switch it off and on if it keeps happening")
    if code in _AUTH_CODES:
        return ("it wants to be paired first: pair it in the system's Bluetooth settings "
                "(some consoles show a code), then try again")
    if code in _ACCESS_CODES:
        return ("another app may be controlling it: close other fitness apps, switch the "
                "treadmill off and on, then try again")
    return _RETRY


def _plain(text: str) -> str:
    return " ".join(text.split()).rstrip(".") or "no details"


def _args_text(exc: BaseException) -> str:
    """What a bleak error says, without the tuple repr `str()` gives for several args."""
    parts = [str(a.name if isinstance(a, BleakGATTProtocolErrorCode) else a)
             for a in exc.args if a not in (None, "")]
    return _plain(": ".join(parts)) if parts else type(exc).__name__


def describe_bluetooth_error(exc: BaseException, address: str | None = None) -> str:
    """A one-line sentence saying what went wrong with Bluetooth and what to do next."""
    where = f" at {address}" if address else ""
    if isinstance(exc, TreadmillError):
        return str(exc)
    if isinstance(exc, BleakDeviceNotFoundError):
        return (
            f"no treadmill found{where}: switch it on, make sure no other app (or its console "
            "pairing) holds it, and run `treadmill scan` to see what is in range"
        )
    if isinstance(exc, BleakBluetoothNotAvailableError):
        if exc.reason == BleakBluetoothNotAvailableReason.POWERED_OFF:
            return "Bluetooth is switched off: turn it on and try again"
        if exc.reason in (BleakBluetoothNotAvailableReason.DENIED_BY_USER,
                          BleakBluetoothNotAvailableReason.DENIED_BY_SYSTEM,
                          BleakBluetoothNotAvailableReason.DENIED_BY_UNKNOWN):
            return "this program may not use Bluetooth: allow it in the system settings"
        return (
            "no usable Bluetooth adapter found: plug one in, or try the simulator "
            "with --simulate"
        )
    if isinstance(exc, BleakGATTProtocolError):
        code = int(exc.args[0]) if exc.args and isinstance(exc.args[0], int) else None
        reason = _gatt_reason(code) if code is not None else _args_text(exc)
        return f"the treadmill{where} refused a Bluetooth request ({reason}): {_gatt_advice(code)}"
    if isinstance(exc, BleakCharacteristicNotFoundError):
        return (
            f"the device{where} lacks a characteristic a treadmill must have "
            f"({exc.char_specifier}): is it an FTMS treadmill? `treadmill scan` lists those"
        )
    if isinstance(exc, BleakDBusError):
        name = exc.dbus_error
        if name.endswith((".NotReady", ".NotPowered")):
            return "Bluetooth is switched off: turn it on and try again"
        if name.endswith(".InProgress"):
            return ("Bluetooth is busy with another connection attempt: wait a few seconds "
                    "and try again")
        if name.startswith("org.freedesktop.DBus.Error."):
            return (f"the Bluetooth service did not answer ({name}): start bluetoothd "
                    "(`systemctl start bluetooth`), or try the simulator with --simulate")
        return (f"Bluetooth failed ({_plain(str(exc))}): switch Bluetooth and the treadmill "
                "off and on, then try again")
    if isinstance(exc, BleakError):
        text = _args_text(exc)
        lowered = text.lower()
        if "adapter" in lowered or "no bluetooth" in lowered or "org.bluez" in lowered:
            return (
                f"no usable Bluetooth adapter ({text}): plug one in and start bluetoothd, "
                "or try the simulator with --simulate"
            )
        if "disconnect" in lowered or "not connected" in lowered:
            return (
                f"the treadmill{where} dropped the Bluetooth connection: check it is switched "
                "on, in range and not connected to another app, then try again"
            )
        if text == type(exc).__name__:
            return f"Bluetooth failed without saying why: {_RETRY}"
        return f"Bluetooth failed ({text}): {_RETRY}"
    if isinstance(exc, TimeoutError):
        return "the treadmill did not answer in time: move closer, or switch it off and on"
    if isinstance(exc, OSError):
        return _describe_os_error(exc, where)
    return f"{type(exc).__name__}: {_plain(str(exc))}: {_RETRY}"


def _describe_os_error(exc: OSError, where: str) -> str:
    text = _plain(exc.strerror or str(exc) or type(exc).__name__)
    if isinstance(exc, FileNotFoundError | PermissionError | ConnectionRefusedError) and (
        "dbus" in str(exc).lower() or exc.filename is None
    ):
        return ("Bluetooth is not available (no D-Bus system bus): is bluetoothd running? "
                "Start it, or try the simulator with --simulate")
    if exc.errno in (errno.EHOSTDOWN, errno.EHOSTUNREACH, errno.ENODEV, errno.ENXIO):
        return (f"the treadmill{where} can't be reached ({text}): switch it on, move closer, "
                "then try again")
    if exc.errno in (errno.EBUSY, errno.EAGAIN, errno.EALREADY, errno.EINPROGRESS):
        return f"Bluetooth is busy ({text}): wait a few seconds and try again"
    if exc.errno == errno.EACCES or isinstance(exc, PermissionError):
        return (f"not allowed to use Bluetooth ({text}): add your user to the `bluetooth` "
                "group, or allow it in the system settings")
    filename = f" ({exc.filename})" if exc.filename else ""
    return f"the system refused{filename}: {text}; {_RETRY}"
