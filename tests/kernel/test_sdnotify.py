"""The sd_notify(3) helpers against a real AF_UNIX datagram socket playing systemd."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from larappp.transport import sdnotify


@pytest.fixture
def manager(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A datagram socket bound where $NOTIFY_SOCKET points, as systemd's would be."""
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def _fields(sock: socket.socket) -> dict[str, str]:
    data = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in data.splitlines())


def test_each_helper_sends_the_fields_sd_notify_defines(manager: socket.socket) -> None:
    assert sdnotify.ready("cid 1 connected,\n cid 2 connected")
    assert _fields(manager) == {"READY": "1", "STATUS": "cid 1 connected, cid 2 connected"}
    assert sdnotify.status("waiting for registration (12 s)")
    assert _fields(manager) == {"STATUS": "waiting for registration (12 s)"}
    assert sdnotify.watchdog()
    assert _fields(manager) == {"WATCHDOG": "1"}
    assert sdnotify.extend_timeout(90.5)
    assert _fields(manager) == {"EXTEND_TIMEOUT_USEC": "90500000"}
    assert sdnotify.stopping("hanging up")
    assert _fields(manager) == {"STOPPING": "1", "STATUS": "hanging up"}


def test_an_abstract_socket_name_starts_with_at(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"larappp-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sdnotify.status("abstract")
        assert sock.recv(100) == b"STATUS=abstract"


def test_silent_outside_systemd_and_false_when_the_socket_is_gone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.ready() is False
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody"))
    assert sdnotify.watchdog() is False


def test_watchdog_interval_is_half_the_timeout_and_only_for_the_named_pid() -> None:
    assert sdnotify.watchdog_interval({}) is None
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == 15.0
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "soon"}) is None


def test_keep_informed_pings_only_while_healthy_and_shows_each_new_status(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind(str(path))
        manager.setblocking(False)
        env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "100000"}  # a ping every 50 ms
        state = {"healthy": True, "line": "cid 1 up"}

        async def scenario() -> list[str]:
            task = asyncio.create_task(
                sdnotify.keep_informed(lambda: state["healthy"], lambda: state["line"], environ=env)
            )
            await asyncio.sleep(0.3)
            state.update(healthy=False, line="cid 1 failed (PPP ended)")
            await asyncio.sleep(0.3)
            task.cancel()
            messages = []
            while True:
                try:
                    messages.append(manager.recv(4096).decode())
                except BlockingIOError:
                    return messages

        messages = asyncio.run(scenario())
    status_at = messages.index("STATUS=cid 1 failed (PPP ended)")
    assert messages[:status_at].count("WATCHDOG=1") >= 3
    assert "WATCHDOG=1" not in messages[status_at:]
    assert "STATUS=cid 1 up" not in messages  # unchanged from READY's status: not repeated


def test_keep_informed_returns_at_once_outside_systemd() -> None:
    asyncio.run(asyncio.wait_for(sdnotify.keep_informed(lambda: True, lambda: "", environ={}), timeout=1))


def test_each_progress_line_becomes_a_status_that_extends_the_timeout(manager: socket.socket) -> None:
    shown: list[str] = []
    progress = sdnotify.forwarding_status(shown.append)
    progress("waiting for registration: not registered, searching (3 s)")
    assert shown == ["waiting for registration: not registered, searching (3 s)"]
    assert _fields(manager) == {
        "STATUS": "waiting for registration: not registered, searching (3 s)",
        "EXTEND_TIMEOUT_USEC": str(round(sdnotify.PROGRESS_GRACE_S * 1_000_000)),
    }


def test_progress_is_untouched_outside_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    shown: list[str] = []
    assert sdnotify.forwarding_status(shown.append) == shown.append


def test_the_status_line_names_the_loss_and_the_redial_while_a_session_recovers() -> None:
    from larappp.cli import session_status_line
    from larappp.session import SessionState

    state = SessionState(name="lara1", cid=1, apn="internet", port="/dev/ttyACM0", state="up")
    assert session_status_line(state.to_json()) == "cid 1 up"
    cause = "the module left data mode: it sent NO CARRIER between the PPP frames"
    state.state, state.losses, state.last_loss_cause = "lost", 1, cause
    assert session_status_line(state.to_json()) == f"cid 1 lost ({cause}), taking it off the host"
    state.state, state.attempt, state.next_attempt_at = "waiting", 1, 1e9
    assert session_status_line(state.to_json()).startswith(f"cid 1 lost ({cause}), redial 1 at ")
    state.state, state.next_attempt_at = "connecting", None
    assert session_status_line(state.to_json()) == f"cid 1 redialling (attempt 1) after a loss ({cause})"
    state.state, state.attempt, state.error = "waiting", 2, "redial 1 failed: NO CARRIER"
    state.next_attempt_at = None
    assert session_status_line(state.to_json()) == f"cid 1 lost ({cause}), redial 2 (redial 1 failed: NO CARRIER)"
    state.state, state.attempt, state.error = "connecting", 0, ""  # the first dial: no loss to name
    assert session_status_line(state.to_json()) == "cid 1 connecting"
