"""hostports in a temporary namespace: port range, reserved ports and bound sockets.

The root namespace's sysctls are only read, never written.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from larappp.errors import ValidationError
from larappp.lara_r6.ports import BoundSocket
from larappp.transport.hostports import (
    PORT_RANGE_PATH,
    bound_ports,
    read_ephemeral_range,
    read_reserved_ports,
    write_reserved_ports,
)
from larappp.transport.netns import call_in_netns, run_in_netns, temp_netns

REPO = Path(__file__).resolve().parents[2]
# psutil reads /proc/net, which follows the process's namespace: ask a child inside it.
LIST_SCRIPT = (
    "import dataclasses, json, sys\n"
    "from larappp.transport.hostports import bound_ports\n"
    "found = bound_ports(int(sys.argv[1]), int(sys.argv[2]))\n"
    "print(json.dumps([dataclasses.astuple(s) for s in found]))\n"
)


@pytest.fixture
def ns() -> Iterator[str]:
    with temp_netns("lxhp-") as name:
        yield name


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    try:
        yield opened
    finally:
        for sock in opened:
            sock.close()


def write_sysctl(path: str, value: str) -> None:
    with open(path, "w", encoding="ascii") as file:
        file.write(value + "\n")


def bound_ports_in(ns: str, first: int, last: int) -> list[BoundSocket]:
    done = run_in_netns(
        ns,
        [sys.executable, "-c", LIST_SCRIPT, str(first), str(last)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    return [BoundSocket(*row) for row in json.loads(done.stdout)]


def test_port_range_and_reserved_ports_change_only_inside_the_namespace(ns: str) -> None:
    root_range, root_reserved = read_ephemeral_range(), read_reserved_ports()
    call_in_netns(ns, write_sysctl, PORT_RANGE_PATH, "40000 40099")
    assert call_in_netns(ns, read_ephemeral_range) == (40000, 40099)
    assert call_in_netns(ns, read_reserved_ports) == ""
    call_in_netns(ns, write_reserved_ports, "40010-40020,40050")
    assert call_in_netns(ns, read_reserved_ports) == "40010-40020,40050"
    with pytest.raises(ValidationError, match="'40000-x' is not a valid list of reserved ports"):
        call_in_netns(ns, write_reserved_ports, "40000-x")
    assert call_in_netns(ns, read_reserved_ports) == "40010-40020,40050"
    call_in_netns(ns, write_reserved_ports, "")
    assert call_in_netns(ns, read_reserved_ports) == ""
    assert (read_ephemeral_range(), read_reserved_ports()) == (root_range, root_reserved)


def test_bound_ports_lists_udp_tcp_v4_v6_listening_and_connected(
    ns: str, sockets: list[socket.socket]
) -> None:
    call_in_netns(ns, write_sysctl, PORT_RANGE_PATH, "40000 40099")

    def open_sockets() -> int:
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sockets.append(udp)
        udp.bind(("0.0.0.0", 40050))
        listener = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        sockets.append(listener)
        listener.bind(("::", 40060))
        listener.listen()
        outside = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sockets.append(outside)
        outside.bind(("127.0.0.1", 41000))
        outside.listen()
        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sockets.append(client)
        client.connect(("127.0.0.1", 41000))  # its port comes from the narrowed range
        accepted, _ = outside.accept()
        sockets.append(accepted)
        return int(client.getsockname()[1])

    client_port = call_in_netns(ns, open_sockets)
    assert 40000 <= client_port <= 40099
    me, my_name = os.getpid(), psutil.Process().name()
    found = bound_ports_in(ns, 40000, 40099)
    assert BoundSocket("udp", 40050, me, my_name) in found
    assert BoundSocket("tcp", 40060, me, my_name) in found
    assert BoundSocket("tcp", client_port, me, my_name) in found
    assert all(40000 <= s.port <= 40099 for s in found)
    assert len(found) == len(set(found)) == 3
    # the listener and its accepted connection share port, pid and process: listed once
    assert bound_ports_in(ns, 41000, 41000) == [BoundSocket("tcp", 41000, me, my_name)]
    assert not any(s.port == 40050 for s in bound_ports(40050, 40050) if s.pid == me)


def test_bound_ports_in_this_process_namespace(sockets: list[socket.socket]) -> None:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sockets.append(udp)
    udp.bind(("127.0.0.1", 0))
    port = udp.getsockname()[1]
    assert bound_ports(port, port) == [
        BoundSocket("udp", port, os.getpid(), psutil.Process().name())
    ]
