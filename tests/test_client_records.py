"""What real treadmills get wrong at the record and link level, as the client sees it: records
split over two notifications (More Data), notifications cut at 20 bytes, the ATT MTU, and a
control point that wants an encrypted (paired) link."""

from __future__ import annotations

import asyncio
import contextlib
import warnings
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar

import pytest
from bleak.args import SizedBuffer
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import NotifyCallback
from bleak.exc import (
    BleakDBusError,
    BleakError,
    BleakGATTProtocolError,
    BleakGATTProtocolErrorCode,
)
from test_client import approved, limits_of, now, written  # shared helpers

from safety import EmergencyStop, Governor, Orientation, Start
from simulators import SimulatedBleakClient, VirtualTreadmill
from treadmill import ftms
from treadmill.client import (
    PAIRED_NOTICE,
    PAIRING_ADVICE,
    PAIRING_NOTICE,
    ApprovalExpired,
    FtmsClient,
    PairingRequired,
    needs_pairing,
)
from treadmill.errors import ControlPointError, TreadmillError
from treadmill.events import TelemetrySample
from treadmill.ftms import TreadmillData
from treadmill.records import DEFAULT_CONTINUATION_S, RecordAssembler

ENCRYPTION = BleakGATTProtocolErrorCode.INSUFFICIENT_ENCRYPTION
AUTHENTICATION = BleakGATTProtocolErrorCode.INSUFFICIENT_AUTHENTICATION


def part(**values: Any) -> bytes:
    """One notification as the encoder writes it: no speed given = More Data set."""
    return ftms.encode_treadmill_data(TreadmillData(**values))


def decoded(**values: Any) -> TreadmillData:
    return ftms.decode_treadmill_data(part(**values))


# ---- truncated packets (the codec) -----------------------------------------------------------

# A real 24-byte record (TrackMyIndoorWorkout capture, DESIGN §7): speed, average speed,
# distance, incline+ramp, elevation gain, energy, elapsed time.
LONG_RECORD = bytes.fromhex("9e04 7302 3302 250000 3c00 ff7f 0000 ff7f 0200 ffff ff 1f00")


def test_a_record_cut_at_20_bytes_keeps_every_complete_field():
    data = ftms.decode_treadmill_data(LONG_RECORD[:20])
    # Total energy is complete; its per-hour part is cut in the middle, the rest is gone.
    assert data.energy_total_kcal == 2
    assert data.values() == {
        "speed_kmh": 6.27, "avg_speed_kmh": 5.63, "distance_m": 37, "incline_pct": 6.0,
        "elevation_gain_pos_m": 0.0, "energy_total_kcal": 2,
    }
    assert data.missing == {"energy_per_hour_kcal", "energy_per_min_kcal", "elapsed_s"}
    assert data.not_available == {"ramp_deg", "elevation_gain_neg_m"}
    assert data.malformed and data.trailing == LONG_RECORD[19:20]  # half of per-hour energy


def test_the_whole_record_is_not_malformed():
    data = ftms.decode_treadmill_data(LONG_RECORD)
    assert not data.malformed and data.missing == frozenset() and data.elapsed_s == 31


def test_a_cut_inside_a_group_keeps_its_first_field():
    # speed, then incline + ramp: the ramp angle is cut off.
    data = ftms.decode_treadmill_data(bytes.fromhex("0800 2c01 3200"))
    assert data.values() == {"speed_kmh": 3.0, "incline_pct": 5.0}
    assert data.missing == {"ramp_deg"} and data.malformed and data.trailing == b""


def test_a_cut_on_a_field_boundary_is_still_malformed():
    data = ftms.decode_treadmill_data(bytes.fromhex("0404 e803"))  # distance, elapsed promised
    assert data.values() == {"speed_kmh": 10.0}
    assert data.missing == {"distance_m", "elapsed_s"}
    assert data.malformed and data.trailing == b""


def test_a_cut_field_is_not_carried():
    data = ftms.decode_treadmill_data(LONG_RECORD[:20])
    assert "elapsed_s" not in data.carried() and "ramp_deg" in data.carried()


def test_an_implausible_speed_does_not_make_a_record_partial():
    data = ftms.decode_treadmill_data(bytes.fromhex("0000 60ea"))  # 600 km/h
    assert data.speed_kmh is None and not data.more_data
    assert decoded(distance_m=5).more_data


# ---- More Data: merging and reassembly -------------------------------------------------------


def test_merge_is_the_union_and_the_second_part_wins():
    first = decoded(distance_m=100, energy_total_kcal=7, heart_rate_bpm=90)
    second = decoded(speed_kmh=4.5, distance_m=101, elapsed_s=60)
    merged = ftms.merge_treadmill_data(first, second)
    assert merged.values() == {
        "speed_kmh": 4.5, "distance_m": 101, "energy_total_kcal": 7, "heart_rate_bpm": 90,
        "elapsed_s": 60,
    }
    assert not merged.more_data and not merged.malformed
    # The energy group's n/a parts came from the first part and stay n/a.
    assert merged.not_available == {"energy_per_hour_kcal", "energy_per_min_kcal"}


def test_merge_keeps_what_a_cut_second_part_did_not_carry():
    first = decoded(elapsed_s=61)
    cut = ftms.decode_treadmill_data(bytes.fromhex("0004 f401"))  # speed, elapsed cut off
    merged = ftms.merge_treadmill_data(first, cut)
    assert merged.values() == {"speed_kmh": 5.0, "elapsed_s": 61}
    assert merged.missing == frozenset() and merged.malformed


def test_a_split_record_is_one_record():
    records = RecordAssembler()
    assert records.feed(decoded(distance_m=100, heart_rate_bpm=95), 10.0) is None
    assert records.pending is not None
    record = records.feed(decoded(speed_kmh=5.0, elapsed_s=30), 10.02)
    assert record is not None
    assert record.values() == {
        "speed_kmh": 5.0, "distance_m": 100, "heart_rate_bpm": 95, "elapsed_s": 30
    }
    assert records.pending is None and records.orphans == 0


def test_a_record_that_is_not_split_passes_through():
    records = RecordAssembler()
    whole = decoded(speed_kmh=3.0, distance_m=5)
    assert records.feed(whole, 1.0) is whole


def test_a_record_in_three_parts_is_one_record():
    records = RecordAssembler()
    assert records.feed(decoded(distance_m=7), 1.0) is None
    assert records.feed(decoded(heart_rate_bpm=100), 1.01) is None
    record = records.feed(decoded(speed_kmh=2.0), 1.02)
    assert record is not None
    assert record.values() == {"speed_kmh": 2.0, "distance_m": 7, "heart_rate_bpm": 100}


def test_a_new_first_part_replaces_one_whose_end_was_lost():
    records = RecordAssembler()
    records.feed(decoded(distance_m=7, heart_rate_bpm=99), 1.0)
    assert records.feed(decoded(distance_m=8), 1.25) is None  # distance again: a new record
    assert records.orphans == 1
    record = records.feed(decoded(speed_kmh=2.0), 1.27)
    assert record is not None
    assert record.values() == {"speed_kmh": 2.0, "distance_m": 8}  # no stale heart rate


def test_a_first_part_left_waiting_is_dropped_not_completed():
    records = RecordAssembler()
    records.feed(decoded(distance_m=7, heart_rate_bpm=99), 1.0)
    late = decoded(speed_kmh=2.0)
    assert records.feed(late, 1.0 + DEFAULT_CONTINUATION_S + 0.01) is late
    assert records.orphans == 1 and records.pending is None


def test_no_speed_is_ever_made_up():
    records = RecordAssembler()
    records.feed(decoded(speed_kmh=6.0), 0.0)
    out = [records.feed(decoded(distance_m=d), 1.0 * d) for d in range(1, 5)]
    assert out == [None, None, None, None] and records.orphans == 3


def test_reset_forgets_a_held_part():
    records = RecordAssembler()
    records.feed(decoded(distance_m=7), 1.0)
    records.reset()
    record = records.feed(decoded(speed_kmh=2.0), 1.01)
    assert record is not None and record.distance_m is None


# ---- the client's notification path ----------------------------------------------------------


def samples_of(client: FtmsClient) -> list[TelemetrySample]:
    events = list(client._events._items)
    return [e for e in events if isinstance(e, TelemetrySample)]


async def test_the_client_reports_a_split_record_as_one_sample():
    client = FtmsClient("F2:0D:FF:FF:FF:02")
    notify = client._on_treadmill_data
    notify(None, bytearray(part(distance_m=250, heart_rate_bpm=101)))  # type: ignore[arg-type]
    assert samples_of(client) == []  # the first half is not a sample (no speed reading)
    notify(None, bytearray(part(speed_kmh=4.2, elapsed_s=90)))  # type: ignore[arg-type]
    [sample] = samples_of(client)
    assert (sample.speed_kmh, sample.distance_m, sample.heart_rate_bpm, sample.elapsed_s) == (
        4.2, 250, 101, 90
    )
    assert client.notifications == 2 and client.malformed_packets == 0


async def test_the_client_drops_a_first_part_whose_end_never_comes():
    client = FtmsClient("F2:0D:FF:FF:FF:03")
    notify = client._on_treadmill_data
    notify(None, bytearray(part(distance_m=250, heart_rate_bpm=101)))  # type: ignore[arg-type]
    await asyncio.sleep(2.0)  # silence
    notify(None, bytearray(part(speed_kmh=4.2)))  # type: ignore[arg-type]
    [sample] = samples_of(client)
    assert (sample.speed_kmh, sample.distance_m, sample.heart_rate_bpm) == (4.2, None, None)
    assert client.incomplete_records == 1


async def test_the_client_reports_a_cut_packet_with_its_complete_fields():
    client = FtmsClient("F2:0D:FF:FF:FF:04")
    client._on_treadmill_data(None, bytearray(LONG_RECORD[:20]))  # type: ignore[arg-type]
    [sample] = samples_of(client)
    assert sample.speed_kmh == 6.27 and sample.distance_m == 37 and sample.incline_pct == 6.0
    assert sample.elapsed_s is None and sample.raw.energy_total_kcal == 2
    assert client.malformed_packets == 1


# ---- test backends ---------------------------------------------------------------------------


def bluez_like(acquire: Callable[[Any], Any] | None) -> type[SimulatedBleakClient]:
    """A backend whose `mtu_size` is a warned guess until `_acquire_mtu` ran, as on BlueZ."""

    class BlueZLike(SimulatedBleakClient):
        _mtu_size: int | None = None

        @property
        def mtu_size(self) -> int:
            if self._mtu_size is None:
                warnings.warn("Using default MTU value.", stacklevel=2)
                return 23
            return self._mtu_size

        async def _acquire_mtu(self) -> None:
            assert acquire is not None
            await acquire(self)

    if acquire is None:
        del BlueZLike._acquire_mtu
    return BlueZLike


def encrypted(
    *,
    cccd: bool = False,
    write: bool = False,
    error: Callable[[], BleakError] = lambda: BleakGATTProtocolError(ENCRYPTION),
    pair_error: Callable[[], BaseException] | None = None,
    pair_s: float = 0.0,
) -> type[SimulatedBleakClient]:
    """A backend for a machine whose control point CCCD (`cccd`) and/or writes (`write`) are
    refused with `error` until pair() succeeded; pair() takes `pair_s` and raises
    `pair_error()` if given. `calls` records the pair attempts."""

    class Encrypted(SimulatedBleakClient):
        calls: ClassVar[list[str]] = []
        bonded: ClassVar[bool] = False

        async def pair(self, *args: Any, **kwargs: Any) -> None:
            type(self).calls.append("pair")
            await asyncio.sleep(pair_s)
            if pair_error is not None:
                raise pair_error()
            type(self).bonded = True

        async def start_notify(
            self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback,
            **kwargs: Any,
        ) -> None:
            if cccd and characteristic.uuid == ftms.CONTROL_POINT and not self.bonded:
                await asyncio.sleep(0.005)
                raise error()
            await super().start_notify(characteristic, callback, **kwargs)

        async def write_gatt_char(
            self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool
        ) -> None:
            if write and characteristic.uuid == ftms.CONTROL_POINT and not self.bonded:
                await asyncio.sleep(0.005)
                raise error()
            await super().write_gatt_char(characteristic, data, response)

    return Encrypted


def client_for(sim: VirtualTreadmill, backend: type[SimulatedBleakClient],
               notices: list[str] | None = None, **kw: Any) -> FtmsClient:
    on_notice = notices.append if notices is not None else None
    return FtmsClient(sim.ble_device, backend=backend, on_notice=on_notice, **kw)


@pytest.fixture
async def sim() -> AsyncIterator[VirtualTreadmill]:
    """A home treadmill on the GATT-level transport: these tests bring their own backend (a
    SimulatedBleakClient subclass), so the ATT transport would add nothing (and it must not
    run them twice: this fixture does not depend on conftest's `sim_transport`)."""
    treadmill = VirtualTreadmill("home")
    yield treadmill
    treadmill.close()
    await asyncio.sleep(0)


# ---- MTU -------------------------------------------------------------------------------------


async def test_the_mtu_a_backend_knows_is_recorded(sim):
    client = FtmsClient(sim.ble_device, backend=SimulatedBleakClient)
    info = await client.connect()
    assert info.mtu == 247
    await client.disconnect()


async def test_the_mtu_is_acquired_where_the_backend_needs_it(sim, recwarn):
    async def acquire(backend: Any) -> None:
        backend._mtu_size = 185

    client = FtmsClient(sim.ble_device, backend=bluez_like(acquire))
    assert (await client.connect()).mtu == 185
    await client.disconnect()
    assert not [w for w in recwarn if "MTU" in str(w.message)]


@pytest.mark.parametrize("failure", ["raises", "hangs", "absent"])
async def test_an_unknown_mtu_never_fails_the_connection(sim, recwarn, failure):
    async def acquire(backend: Any) -> None:
        if failure == "hangs":
            await asyncio.sleep(3600)
        raise BleakDBusError("org.bluez.Error.NotPermitted", ["Notify acquired"])

    backend = bluez_like(None if failure == "absent" else acquire)
    client = FtmsClient(sim.ble_device, backend=backend)
    t0 = now()
    info = await client.connect()
    assert info.mtu is None  # BlueZ's guess of 23 is not reported as a measurement
    assert now() - t0 < 3.0 and client.is_connected
    assert not [w for w in recwarn if "MTU" in str(w.message)]
    await client.disconnect()


async def test_a_backend_whose_mtu_size_raises_is_fine(sim):
    class NoMtu(SimulatedBleakClient):
        @property
        def mtu_size(self) -> int:
            raise NotImplementedError

    client = FtmsClient(sim.ble_device, backend=NoMtu)
    assert (await client.connect()).mtu is None
    await client.disconnect()


# ---- pairing ---------------------------------------------------------------------------------


def test_which_errors_pairing_cures():
    assert needs_pairing(BleakGATTProtocolError(ENCRYPTION))
    assert needs_pairing(BleakGATTProtocolError(AUTHENTICATION))
    assert needs_pairing(
        BleakGATTProtocolError(BleakGATTProtocolErrorCode.INSUFFICIENT_ENCRYPTION_KEY_SIZE)
    )
    # BlueZ's words for 0x05/0x0C/0x0F:
    assert needs_pairing(BleakDBusError("org.bluez.Error.NotPermitted", ["Not paired"]))
    assert needs_pairing(BleakError("GATT Protocol Error: Insufficient Encryption"))
    # ... and what pairing does not cure:
    assert not needs_pairing(BleakDBusError("org.bluez.Error.NotPermitted",
                                            ["Write not permitted"]))
    assert not needs_pairing(
        BleakGATTProtocolError(BleakGATTProtocolErrorCode.INSUFFICIENT_AUTHORIZATION)
    )
    assert not needs_pairing(
        BleakGATTProtocolError(BleakGATTProtocolErrorCode.PROCEDURE_ALREADY_IN_PROGRESS)
    )
    assert not needs_pairing(TimeoutError("Not paired"))


async def test_pairing_happens_at_connect_when_the_control_point_cccd_asks(sim):
    backend = encrypted(cccd=True)
    notices: list[str] = []
    client = client_for(sim, backend, notices)
    info = await client.connect()
    assert backend.calls == ["pair"] and info.paired and client.paired
    assert notices == [PAIRING_NOTICE, PAIRED_NOTICE]
    [control] = approved(Governor(limits_of(info)), Start(now(), Orientation.FORWARD))
    assert (await client.execute(control)).ok
    await client.disconnect()


async def test_bluez_not_paired_at_connect_pairs_too(sim):
    backend = encrypted(
        cccd=True, error=lambda: BleakDBusError("org.bluez.Error.NotPermitted", ["Not paired"])
    )
    client = client_for(sim, backend)
    assert (await client.connect()).paired and backend.calls == ["pair"]
    await client.disconnect()


@pytest.mark.parametrize(
    "pair_error",
    [
        lambda: NotImplementedError("Pairing is not available in Core Bluetooth."),
        lambda: BleakError("Device does not support pairing"),
        lambda: BleakDBusError("org.bluez.Error.AuthenticationFailed", ["Authentication\nFailed"]),
    ],
)
async def test_no_pairing_possible_at_connect_is_one_clear_line(sim, pair_error):
    backend = encrypted(cccd=True, pair_error=pair_error)
    notices: list[str] = []
    client = client_for(sim, backend, notices)
    with pytest.raises(PairingRequired) as error:
        await client.connect()
    message = str(error.value)
    assert "\n" not in message and message.endswith(PAIRING_ADVICE)
    assert message.startswith("the treadmill needs pairing")
    assert isinstance(error.value, TreadmillError)
    assert backend.calls == ["pair"] and notices == [PAIRING_NOTICE]
    assert not client.is_connected


async def test_a_pairing_that_never_finishes_fails_the_connection_in_time(sim):
    backend = encrypted(cccd=True, pair_s=3600)
    client = client_for(sim, backend, pair_timeout=2.0)
    t0 = now()
    with pytest.raises(PairingRequired, match="did not finish within 2 s"):
        await client.connect()
    assert now() - t0 < 3.0 and not client.is_connected
    assert client._pairing is None  # the attempt was cancelled with the connection


async def test_a_write_refused_until_paired_pairs_once_and_goes(sim):
    backend = encrypted(write=True, error=lambda: BleakGATTProtocolError(AUTHENTICATION))
    notices: list[str] = []
    client = client_for(sim, backend, notices)
    info = await client.connect()
    assert backend.calls == [] and not info.paired  # the CCCDs were fine
    [control] = approved(Governor(limits_of(info)), Start(now(), Orientation.FORWARD))
    assert (await client.execute(control)).ok
    assert backend.calls == ["pair"] and notices == [PAIRING_NOTICE, PAIRED_NOTICE]
    assert written(sim) == [ftms.encode_request_control()]  # once, after pairing
    await client.disconnect()


async def test_a_command_whose_approval_expires_while_pairing_is_not_written(sim):
    backend = encrypted(write=True, pair_s=1.0)
    client = client_for(sim, backend)
    info = await client.connect()
    [control] = approved(Governor(limits_of(info)), Start(now(), Orientation.FORWARD))
    with pytest.raises(ApprovalExpired):
        await client.execute(control)
    assert backend.calls == ["pair"] and written(sim) == []
    await client.disconnect()


async def test_a_stop_refused_until_paired_is_paired_for_and_written(sim):
    backend = encrypted(write=True)
    client = client_for(sim, backend)
    info = await client.connect()
    [stop] = approved(Governor(limits_of(info)), EmergencyStop(now()))
    with contextlib.suppress(ControlPointError):  # no control held: refused, but written
        await client.execute(stop)
    assert backend.calls == ["pair"] and written(sim) == [ftms.encode_stop()]
    await client.disconnect()


async def test_a_stop_that_cannot_be_paired_for_fails_clearly_and_at_once(sim):
    backend = encrypted(write=True, pair_error=lambda: NotImplementedError("no pairing here"))
    client = client_for(sim, backend)
    info = await client.connect()
    [stop] = approved(Governor(limits_of(info)), EmergencyStop(now()))
    t0 = now()
    with pytest.raises(PairingRequired) as error:
        await client.execute(stop)
    assert now() - t0 < 0.1 and "\n" not in str(error.value)
    # Again: no second pair attempt, the same clear failure, no waiting.
    [stop] = approved(Governor(limits_of(info)), EmergencyStop(now()))
    with pytest.raises(PairingRequired):
        await client.execute(stop)
    assert backend.calls == ["pair"] and written(sim) == []
    assert client.is_connected
    await client.disconnect()


async def test_a_stop_waits_for_a_slow_pairing_no_longer_than_its_timeout(sim):
    backend = encrypted(write=True, pair_s=20.0)
    client = client_for(sim, backend, indication_timeout=2.0)
    info = await client.connect()
    [stop] = approved(Governor(limits_of(info)), EmergencyStop(now()))
    t0 = now()
    with pytest.raises(PairingRequired, match="did not finish"):
        await client.execute(stop)
    assert now() - t0 == pytest.approx(2.0, abs=0.05)
    # The attempt went on; once it is done, a repeated Stop goes out without a second one.
    await asyncio.sleep(20.0)
    assert client.paired
    [stop] = approved(Governor(limits_of(info)), EmergencyStop(now()))
    with contextlib.suppress(ControlPointError):
        await client.execute(stop)
    assert backend.calls == ["pair"] and written(sim) == [ftms.encode_stop()]
    await client.disconnect()
