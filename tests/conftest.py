"""Shared test setup: async tests run on simulated time; simulators are closed after each test."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest
from hypothesis import settings

from simulators.treadmill import VirtualTreadmill
from simulators.virtual_time import VirtualTimeLoop

# CI runs the property tests on a fixed set of examples, so a submission passes or fails on
# its own merits, not on the luck of the draw; local runs explore new random examples each
# time (and GOVERNOR_EXAMPLES=5000 explores deeply). Anything found locally becomes a unit test.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "real_time: run this async test on a stock asyncio loop instead of virtual time"
    )


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The event loop each async test (and its async fixtures) runs on.

    pytest-asyncio 1.5's supported way to choose loops (overriding the `event_loop_policy`
    fixture is deprecated). Every async test gets `VirtualTimeLoop`, so `asyncio.sleep(1800)`
    costs no wall time and no test sleeps for real. A test that needs the wall clock (a real
    subprocess, a UI that polls from threads) opts out with `@pytest.mark.real_time`.
    Synchronous code can use `simulators.virtual_time.run_virtual(coro)` instead.
    """
    if item.get_closest_marker("real_time") is not None:
        return {"real_time": asyncio.new_event_loop}
    return {"virtual_time": VirtualTimeLoop}


type SimFactory = Callable[..., VirtualTreadmill]

# These modules run every test on both simulator transports: the GATT-level one and ATT over a
# simulated LE link (Bumble). A test that only makes sense on one says why in its name. (The
# simulator's own fault tests, test_simulator_faults, check the sans-IO server's scripts to the
# millisecond from a connection at t=0; transport-independent, they run on the GATT level.)
BOTH_TRANSPORTS = {"test_client", "test_client_faults", "test_client_records", "test_session",
                   "test_att_transport"}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    if module in BOTH_TRANSPORTS and "sim_transport" in metafunc.fixturenames:
        name = metafunc.function.__name__
        transports = ["att"] if "over_att" in name else ["gatt"] if "gatt_level" in name else [
            "gatt", "att"]
        metafunc.parametrize("sim_transport", transports, indirect=True)


@pytest.fixture
def sim_transport(request: pytest.FixtureRequest) -> str:
    """The transport `make_sim` builds simulators with (both, in BOTH_TRANSPORTS modules)."""
    return getattr(request, "param", "gatt")


@pytest.fixture
async def make_sim(sim_transport: str) -> AsyncIterator[SimFactory]:
    """`make_sim(profile="home", **kwargs)` -> a VirtualTreadmill closed at teardown."""
    sims: list[VirtualTreadmill] = []

    def make(profile: Any = "home", **kwargs: Any) -> VirtualTreadmill:
        kwargs.setdefault("transport", sim_transport)
        if kwargs["transport"] == "att":
            # The shortest connection interval, so the air adds milliseconds, not tenths, to
            # the timings these tests check; benchmarks/att_estop.py measures 30 and 50 ms.
            kwargs.setdefault("connection_interval_ms", 7.5)
        sim = VirtualTreadmill(profile, **kwargs)
        sims.append(sim)
        return sim

    yield make
    for sim in sims:
        sim.close()
    await asyncio.sleep(0)  # let cancelled telemetry tasks finish on this loop


@pytest.fixture
async def sim(make_sim: SimFactory) -> VirtualTreadmill:
    """A home treadmill."""
    return make_sim("home")


@pytest.fixture
async def connect(make_sim: SimFactory) -> AsyncIterator[Callable[..., Any]]:
    """`await connect(profile, *, read=True, faults=..., **client_kw)` -> a connected client
    rig (tests/test_client.py: client, simulator and a governor driving it), closed after."""
    from test_client import Rig

    rigs: list[Any] = []

    async def make(profile: object = "home", *, read: bool = True, **kw: Any) -> Any:
        sim_kw = {k: kw.pop(k) for k in ("faults", "notify_hz") if k in kw}
        rig = await Rig.open(make_sim(profile, **sim_kw), read=read, **kw)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        await rig.close()


@pytest.fixture(autouse=True)
def private_history(tmp_path_factory: pytest.TempPathFactory,
                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test (and every process it starts) records sessions in a folder of its own,
    never in the user's history."""
    monkeypatch.setenv("TREADMILL_DATA_DIR", str(tmp_path_factory.mktemp("data")))
