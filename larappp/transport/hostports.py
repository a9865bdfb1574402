"""The host's side of the module's embedded port filter: ephemeral ports and bound sockets.

LARA-R6 keeps incoming packets for its own ports unless the host's ports are declared
(app note §4.3, AT+UEMBPF). These helpers read the host's ephemeral range and its
reserved ports and list the sockets bound in a range; the comparison with the module's
range lives in larappp/lara_r6/ports.py.

The /proc/sys/net files belong to the network namespace of the calling thread; the
socket list (psutil reads /proc/net) belongs to the namespace of the process.
"""

from __future__ import annotations

import errno
import socket

import psutil

from larappp.errors import NetworkSetupError, ValidationError
from larappp.lara_r6.ports import BoundSocket

PORT_RANGE_PATH = "/proc/sys/net/ipv4/ip_local_port_range"
RESERVED_PORTS_PATH = "/proc/sys/net/ipv4/ip_local_reserved_ports"


def read_ephemeral_range() -> tuple[int, int]:
    """The first and last port Linux picks for outgoing connections (ip_local_port_range)."""
    with open(PORT_RANGE_PATH, encoding="ascii") as file:
        first, last = file.read().split()
    return int(first), int(last)


def read_reserved_ports() -> str:
    """The ports Linux never picks as ephemeral, as the kernel lists them ("" when none)."""
    with open(RESERVED_PORTS_PATH, encoding="ascii") as file:
        return file.read().strip()


def write_reserved_ports(value: str) -> None:
    """Set ip_local_reserved_ports to `value` (comma-separated ports and ranges, "" for none)."""
    try:
        with open(RESERVED_PORTS_PATH, "w", encoding="ascii") as file:
            file.write(value.strip() + "\n")
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            raise ValidationError(
                f"'{value}' is not a valid list of reserved ports: write ports and ranges"
                " separated by commas, such as 50000,51000-51099"
            ) from exc
        raise NetworkSetupError(
            f"cannot write {RESERVED_PORTS_PATH} ({exc.strerror}): run larappp as root"
        ) from exc


def bound_ports(first: int, last: int) -> list[BoundSocket]:
    """TCP and UDP sockets (IPv4 and IPv6, listening or connected) with a local port in range.

    Sorted and without duplicates; pid and process_name are None where psutil cannot tell
    (a socket in TIME_WAIT, or another user's process when not run as root).
    """
    names: dict[int, str | None] = {}
    found: set[BoundSocket] = set()
    for conn in psutil.net_connections(kind="inet"):
        if not conn.laddr or not first <= conn.laddr.port <= last:
            continue
        proto = "tcp" if conn.type == socket.SOCK_STREAM else "udp"
        pid = conn.pid
        if pid is not None and pid not in names:
            names[pid] = _process_name(pid)
        found.add(BoundSocket(proto, conn.laddr.port, pid, names.get(pid) if pid else None))
    return sorted(found, key=lambda s: (s.port, s.proto, s.pid or 0, s.process_name or ""))


def _process_name(pid: int) -> str | None:
    try:
        return str(psutil.Process(pid).name())
    except psutil.Error:
        return None
