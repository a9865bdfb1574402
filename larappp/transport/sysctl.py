"""Network sysctls under /proc/sys/net for the calling thread's namespace, with undo.

pyroute2 has no sysctl API (FACTS.md), so values are read and written as files. The
kernel resolves /proc/sys/net against the namespace of the thread that opens the file,
so a thread that entered a namespace with `pyroute2.netns.pushns()` sees that
namespace's values. Every write remembers the first value it replaced; `undo()`
restores them newest first and skips interfaces that are gone.

Settings larappp uses on a PPP TUN (before link-up, so no kernel link-local appears):
addr_gen_mode=1 (we add fe80::<IPV6CP IID> ourselves), accept_ra=2 (kernel SLAAC even
with forwarding on) or 0 (user-space SLAAC), autoconf, disable_ipv6 (IPv4-only PDP).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from pathlib import Path

from larappp.errors import ConfigError, NetworkSetupError

__all__ = ["Sysctl", "SysctlChange"]

PROC_SYS = Path("/proc/sys")


@dataclass(frozen=True)
class SysctlChange:
    """One value larappp wrote: the key relative to /proc/sys and what was there before."""

    key: str
    old_value: str
    new_value: str


def _component(name: str, what: str) -> str:
    if not name or "/" in name or name in (".", "..") or "\0" in name:
        raise ConfigError(f"{what} {name!r} is not usable in a sysctl path: check its spelling")
    return name


class Sysctl:
    """Reads and writes /proc/sys/net/... values, remembering the old ones for `undo()`."""

    def __init__(self, root: str | Path = PROC_SYS) -> None:
        self.root = Path(root)
        self.changes: list[SysctlChange] = []

    # -- generic -----------------------------------------------------------------------
    def _path(self, key: str) -> Path:
        parts = key.strip("/").split("/")
        if parts[0] != "net":
            raise ConfigError(f"sysctl {key!r} is outside net/: larappp only changes net/ keys")
        for part in parts:
            _component(part, "sysctl component")
        return self.root.joinpath(*parts)

    def read(self, key: str) -> str:
        """The value of `key` ("net/ipv6/conf/ppp0/accept_ra"), stripped."""
        path = self._path(key)
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            raise NetworkSetupError(
                f"sysctl {key} does not exist: check the interface name (or that IPv6 is enabled)"
            ) from None

    def write(self, key: str, value: str | int) -> None:
        """Set `key`; the first value replaced is remembered for undo."""
        path = self._path(key)
        new_value = str(value)
        old_value = self.read(key)
        try:
            path.write_text(new_value + "\n")
        except OSError as exc:
            raise NetworkSetupError(f"cannot set {key} to {new_value}: {exc.strerror}") from None
        if not any(change.key == key for change in self.changes):
            self.changes.append(SysctlChange(key, old_value, new_value))

    def undo(self) -> list[str]:
        """Restore every changed value, newest first; returns the failures (kept for retry)."""
        failures: list[str] = []
        kept: list[SysctlChange] = []
        for change in reversed(self.changes):
            try:
                self._path(change.key).write_text(change.old_value + "\n")
            except FileNotFoundError:
                continue  # the interface went away, and its settings with it
            except OSError as exc:
                if exc.errno == errno.ENODEV:
                    continue
                failures.append(f"{change.key}: cannot restore {change.old_value}: {exc}")
                kept.append(change)
        self.changes = list(reversed(kept))
        return failures

    def forget_interface(self, ifname: str) -> None:
        """Drop remembered changes of an interface that is gone."""
        self.changes = [c for c in self.changes if f"/conf/{ifname}/" not in f"/{c.key}/"]

    # -- the keys larappp uses -----------------------------------------------------------
    def set_ipv6_conf(self, ifname: str, key: str, value: str | int) -> None:
        """net/ipv6/conf/<ifname>/<key> (accept_ra, addr_gen_mode, autoconf, disable_ipv6...)."""
        self.write(
            f"net/ipv6/conf/{_component(ifname, 'interface')}/{_component(key, 'key')}", value
        )

    def get_ipv6_conf(self, ifname: str, key: str) -> str:
        return self.read(
            f"net/ipv6/conf/{_component(ifname, 'interface')}/{_component(key, 'key')}"
        )

    def set_ipv4_conf(self, ifname: str, key: str, value: str | int) -> None:
        """net/ipv4/conf/<ifname>/<key> (rp_filter, forwarding...)."""
        self.write(
            f"net/ipv4/conf/{_component(ifname, 'interface')}/{_component(key, 'key')}", value
        )

    def get_ipv4_conf(self, ifname: str, key: str) -> str:
        return self.read(
            f"net/ipv4/conf/{_component(ifname, 'interface')}/{_component(key, 'key')}"
        )

    def set_forwarding(self, family: int, enabled: bool, ifname: str = "all") -> None:
        """IPv4 or IPv6 forwarding for `ifname` ("all" for the whole namespace)."""
        value = 1 if enabled else 0
        if family == 4:
            if ifname == "all":
                self.write("net/ipv4/ip_forward", value)
            else:
                self.set_ipv4_conf(ifname, "forwarding", value)
        elif family == 6:
            self.set_ipv6_conf(ifname, "forwarding", value)
        else:
            raise ValueError(f"family must be 4 or 6, not {family}")

    def prepare_ipv6_link(self, ifname: str, *, kernel_slaac: bool) -> None:
        """Settings for a PPP TUN before link-up: no kernel link-local (we add fe80::<IID>),
        and RAs handled by the kernel (accept_ra=2, autoconf=1) or by larappp (accept_ra=0)."""
        self.set_ipv6_conf(ifname, "disable_ipv6", 0)
        self.set_ipv6_conf(ifname, "addr_gen_mode", 1)
        self.set_ipv6_conf(ifname, "accept_ra", 2 if kernel_slaac else 0)
        self.set_ipv6_conf(ifname, "autoconf", 1 if kernel_slaac else 0)
