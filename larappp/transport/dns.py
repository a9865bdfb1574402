"""Hand DNS servers learned on a PPP link (IPCP, RDNSS) to the host's resolver, and take them back.

Modes:
  "file"       a resolv.conf fragment <directory>/<ifname>.conf (default directory
               /run/larappp/resolv.conf.d) for the administrator's own resolver setup;
  "resolvconf" `resolvconf -a <ifname>.larappp` with the fragment on stdin (Debian's
               resolvconf and openresolv both order "IFACE.PROG" records by interface);
  "resolved"   `resolvectl dns <ifname> ...` (systemd-resolved keeps servers per link);
  "auto"       resolved when systemd-resolved runs, else resolvconf when installed,
               else file;
  "none"       do nothing.
`remove()` undoes what `apply()` did.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path
from typing import Literal

from larappp.errors import ConfigError, NetworkSetupError

__all__ = ["DEFAULT_DIRECTORY", "DnsMode", "DnsWriter", "resolve_mode"]

DEFAULT_DIRECTORY = Path("/run/larappp/resolv.conf.d")
RESOLVED_RUNTIME = Path("/run/systemd/resolve")
DnsMode = Literal["file", "resolvconf", "resolved", "auto", "none"]
_MODES = ("file", "resolvconf", "resolved", "auto", "none")

#: runs a command with optional stdin text; raises NetworkSetupError on failure
Runner = Callable[[Sequence[str], str | None], None]
#: resolvconf and resolvectl are looked up here only, never in an inherited $PATH
PINNED_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _which(name: str) -> str | None:
    return shutil.which(name, path=PINNED_PATH)


def _run(command: Sequence[str], stdin: str | None) -> None:
    program = _which(command[0])
    if program is None:
        raise NetworkSetupError(f"{command[0]} is not installed (looked in {PINNED_PATH}): set the session's dns to file or none")
    try:
        done = subprocess.run(
            [program, *command[1:]], input=stdin, capture_output=True, text=True, timeout=15,
            check=False, env={"PATH": PINNED_PATH, "LANG": "C"},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetworkSetupError(f"{command[0]} failed: {exc}") from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip()
        raise NetworkSetupError(
            f"{' '.join(command)} exited {done.returncode}: {detail or 'no message'}"
        )


def resolve_mode(
    mode: DnsMode,
    *,
    which: Callable[[str], str | None] = _which,
    resolved_dir: Path = RESOLVED_RUNTIME,
) -> DnsMode:
    """The concrete mode "auto" stands for on this host (other modes are returned as given)."""
    if mode not in _MODES:
        raise ConfigError(f"DNS mode {mode!r} is unknown: use one of {', '.join(_MODES)}")
    if mode != "auto":
        return mode
    if which("resolvectl") and (resolved_dir / "io.systemd.Resolve").exists():
        return "resolved"
    if which("resolvconf"):
        return "resolvconf"
    return "file"


class DnsWriter:
    """Publishes one interface's DNS servers where the host's resolver looks, and removes them."""

    def __init__(
        self,
        ifname: str,
        mode: DnsMode = "auto",
        *,
        directory: str | Path = DEFAULT_DIRECTORY,
        runner: Runner = _run,
        which: Callable[[str], str | None] = _which,
    ) -> None:
        if not ifname or "/" in ifname or ifname.startswith("."):
            raise ConfigError(f"interface name {ifname!r} cannot name a DNS record")
        self.ifname = ifname
        self.mode: DnsMode = resolve_mode(mode, which=which)
        self.directory = Path(directory)
        self._runner = runner
        self._applied = False
        self.servers: tuple[IPv4Address | IPv6Address, ...] = ()

    @property
    def path(self) -> Path:
        """The fragment file of "file" mode."""
        return self.directory / f"{self.ifname}.conf"

    @property
    def record_name(self) -> str:
        """The resolvconf record name."""
        return f"{self.ifname}.larappp"

    def render(
        self, servers: Sequence[IPv4Address | IPv6Address], search: Sequence[str] = ()
    ) -> str:
        """resolv.conf text; link-local IPv6 servers get the %<ifname> zone they need."""
        lines = [f"# DNS servers learned by larappp on {self.ifname}"]
        for server in servers:
            scoped = f"{server}%{self.ifname}" if server.is_link_local else str(server)
            lines.append(f"nameserver {scoped}")
        if search:
            lines.append("search " + " ".join(search))
        return "\n".join(lines) + "\n"

    def apply(
        self, servers: Sequence[str | IPv4Address | IPv6Address], search: Sequence[str] = ()
    ) -> None:
        """Publish `servers` (replacing what this writer published before)."""
        parsed = tuple(dict.fromkeys(ip_address(s) for s in servers))
        if not parsed:
            self.remove()
            return
        self.servers = parsed
        if self.mode == "none":
            return
        if self.mode == "file":
            self._write_file(self.render(parsed, search))
        elif self.mode == "resolvconf":
            self._runner(["resolvconf", "-a", self.record_name], self.render(parsed, search))
        elif self.mode == "resolved":
            self._runner(["resolvectl", "dns", self.ifname, *map(str, parsed)], None)
            if search:
                self._runner(["resolvectl", "domain", self.ifname, *search], None)
        self._applied = True

    def record(self) -> dict[str, str] | None:
        """What `apply()` published, as plain data for the host record (None: nothing)."""
        if not self._applied or self.mode == "none":
            return None
        return {"mode": self.mode}

    @classmethod
    def from_record(cls, ifname: str, record: dict[str, str], directory: str | Path) -> DnsWriter:
        """A writer that can `remove()` what a killed larappp published (see `record()`).

        The directory is the caller's (from the config), never one read from the record."""
        mode = record.get("mode", "file")
        if mode not in ("file", "resolvconf", "resolved"):
            raise ConfigError(f"DNS record mode {mode!r} is unknown")
        writer = cls(ifname, mode, directory=directory)  # type: ignore[arg-type]
        writer._applied = True
        return writer

    def remove(self) -> None:
        """Take back what `apply()` published; harmless when nothing was."""
        self.servers = ()
        if not self._applied:
            return
        self._applied = False
        if self.mode == "file":
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
        elif self.mode == "resolvconf":
            self._runner(["resolvconf", "-d", self.record_name], None)
        elif self.mode == "resolved":
            try:
                self._runner(["resolvectl", "revert", self.ifname], None)
            except NetworkSetupError:
                pass  # the link is gone, and resolved dropped its servers with it

    def _write_file(self, text: str) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(prefix=f".{self.ifname}.", dir=self.directory)
            try:
                with os.fdopen(handle, "w") as stream:
                    stream.write(text)
                os.chmod(temporary, 0o644)
                os.replace(temporary, self.path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise NetworkSetupError(
                f"cannot write {self.path}: {exc.strerror}; set the DNS directory to a "
                "writable place or the DNS mode to none"
            ) from None
