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
from pathlib import Path

import psutil

from larappp.errors import NetworkSetupError, ValidationError
from larappp.lara_r6.ports import BoundSocket

PORT_RANGE_PATH = "/proc/sys/net/ipv4/ip_local_port_range"
RESERVED_PORTS_PATH = "/proc/sys/net/ipv4/ip_local_reserved_ports"
SYSCTL_DIR = Path("/etc/sysctl.d")
#: systemd-sysctl reads /etc/sysctl.d/*.conf in name order at boot; a later file wins per key.
DROPIN_NAME = "60-larappp-ports.conf"


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


def reserved_ports_dropin_text(value: str) -> str:
    """A sysctl.d file that sets ip_local_reserved_ports to `value` at boot (sysctl.d(5))."""
    return (
        "# Written by `larappp check --fix-ports --persist`: the ports the LARA-R6 keeps for its\n"
        "# embedded applications (AT+UEMBPF, app note §4.3) are never ephemeral ports here.\n"
        "# A file sorting later that sets the same key replaces this value.\n"
        f"net.ipv4.ip_local_reserved_ports = {value.strip()}\n"
    )


def write_reserved_ports_dropin(value: str, directory: Path = SYSCTL_DIR) -> Path:
    """Write the reservation to <directory>/60-larappp-ports.conf (atomically) and return its path."""
    path = directory / DROPIN_NAME
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(reserved_ports_dropin_text(value), encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise NetworkSetupError(f"cannot write {path} ({exc.strerror}): run larappp as root") from exc
    return path


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
