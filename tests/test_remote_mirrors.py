"""The screen's side of the wire (tui/remote.py): the link's mirror follows the controller's
snapshots, one mirror per connection, and a mirror a screen still holds says when its link is
gone. Driven with snapshots by hand; no controller process, and the wire is never read (a
closed wire makes the screen's process leave with os._exit, which would end the test run)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tui.remote import RemoteHost
from tui.views import CoreState, LinkState


@pytest.fixture
def host() -> Iterator[RemoteHost]:
    ours, theirs = socket.socketpair()
    remote = RemoteHost(ours)
    yield remote
    remote.close()
    ours.close()
    theirs.close()


def link(key: int, *, speed: float | None = 0.0, connected: bool = True) -> LinkState:
    return LinkState(key=key, address="SIM", name="Simulated", connected=connected,
                     simulated=True, can_stop=connected, belt_speed_kmh=speed, last_sample=None,
                     info=None)


def snapshot(state: LinkState | None) -> CoreState:
    return CoreState(loop_time=0.0, monotonic=0.0, speedup=1.0, link=state, sim=None,
                     runners={}, session_active=False, can_stop=False, last_session_id=None,
                     record=False)


def test_the_same_link_keeps_its_mirror_and_a_new_link_gets_a_new_one(host):
    assert not host.started
    first = host._adopt(link(1))  # the connect's result
    host._apply(snapshot(link(1, speed=2.5)))
    assert host.controller.link is first and first.belt_speed_kmh == 2.5

    host._apply(snapshot(link(2)))
    second = host.controller.link
    assert second is not first and second.key == 2
    assert not first.connected and not first.can_stop  # a screen holding it sees it gone


def test_no_link_in_a_snapshot_leaves_no_mirror_and_tells_the_old_one(host):
    first = host._adopt(link(1))
    host._apply(snapshot(None))
    assert host.controller.link is None
    assert not first.connected and not first.can_stop


def test_a_connect_result_for_the_link_already_mirrored_is_that_mirror(host):
    host._apply(snapshot(link(1, speed=1.0)))
    mirrored = host.controller.link
    assert host._adopt(link(1, speed=1.0)) is mirrored

