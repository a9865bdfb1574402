"""pppd's runtime folder: the options file, the ip-up/ip-down hooks, and what they report.

The folder (0700) becomes pppd's /etc/ppp in its own mount namespace. pppd 2.4.9 always
reads /etc/ppp/options and runs /etc/ppp/ip-pre-up and ipv6-up, and `usepeerdns` writes
/etc/ppp/resolv.conf: with the folder in its place none of the host's files apply. Where
that is impossible the options file still states every setting Debian's /etc/ppp/options
changes, so only additions there would apply (`host_options_in_effect` lists them).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shlex
import shutil
from dataclasses import dataclass
from ipaddress import IPv4Address, ip_address
from pathlib import Path

from larappp.engine.options import EngineOptions

__all__ = [
    "BRIDGED",
    "ETC_PPP",
    "IpcpReport",
    "Line",
    "PppdFolder",
    "host_options_in_effect",
    "options_file_text",
    "parse_ipcp_report",
    "pppd_word",
]

ETC_PPP = "/etc/ppp"
#: the search path pppd and its hooks run with
SEARCH_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
OPTIONS_NAME = "larappp.options"
REPORT_NAME = "ipcp"


def pppd_word(text: str) -> str:
    """`text` as one word of a pppd options file: quoted, with `\\`, `"` and controls escaped."""
    out = ['"']
    for char in text:
        if char in '\\"':
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\{ord(char):03o}")  # always 3 octal digits: unambiguous (pppd's getword)
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


@dataclass(frozen=True)
class Line:
    """How pppd reaches the module: the dialled serial device itself, or larappp's pty bridge."""

    #: pppd has the device as its stdin (its own fd; the kernel's async PPP frames)
    owns_device: bool
    #: RTS/CTS on the device as larappp set it (modem.rtscts); kept by pppd's `crtscts`
    rtscts: bool = False


#: the pty bridge (RFC 2217, later CMUX): the pty has no modem lines, the port is larappp's
BRIDGED = Line(owns_device=False)


def _line_options(line: Line) -> list[str]:
    if not line.owns_device:
        return [
            "# the pty bridge to the module's port: the port's lock, modem lines and RTS/CTS are larappp's",
            "local", "nocrtscts", "nolock",
        ]
    return [
        "# pppd owns the dialled device (its stdin; larappp keeps its own fd open and the port's",
        "# lock). No connect script: the call is up already. `local` (pppd(8): then pppd will not",
        "# change the state of the DTR signal): the module stays in data mode until larappp ends",
        "# the call, and DCD is larappp's to watch, as with the built-in engine. `modem` would drop",
        "# DTR at the end, clear CLOCAL (a DCD drop then hangs up larappp's fd too) and make pppd's",
        "# open wait for a DCD that some ports never raise.",
        "local", "crtscts" if line.rtscts else "nocrtscts", "nolock",
    ]


def options_file_text(
    options: EngineOptions,
    *,
    ip_up: Path,
    ip_down: Path,
    line: Line = BRIDGED,
    debug: bool = False,
) -> str:
    """The whole option set for one session's pppd (the device goes on the command line)."""
    families = set(options.families)
    echo = 0 if not options.echo_interval else max(1, round(options.echo_interval))
    lines = [
        f"# larappp: pppd options for {options.ifname}; written at each start, removed at the end.",
        "# Every setting Debian's /etc/ppp/options changes is stated here.",
        "nodetach",
        "logfd 2",
        *_line_options(line),
        "nopersist",
        "asyncmap 0",
        "noccp",
        "novj",
        f"mru {options.mru}",
        f"mtu {options.mru}",
        f"lcp-echo-interval {echo}",
        f"lcp-echo-failure {options.echo_failures}",
        "# authentication: the module is not asked to authenticate itself",
        "noauth",
        "refuse-eap",
        "refuse-mschap",
        "refuse-mschap-v2",
    ]
    if options.auth == "pap":
        lines.append("refuse-chap")
    elif options.auth == "chap":
        lines.append("refuse-pap")
    lines += [
        f"user {pppd_word(options.username)}",
        f"password {pppd_word(options.password)}",
        "hide-password",
        "# IP: addresses from the network; routes and DNS are larappp's",
        "noipdefault",
        "ipcp-accept-local",
        "ipcp-accept-remote",
        "noremoteip",
        "usepeerdns",
        "nodefaultroute",
        "noreplacedefaultroute",
        "nodefaultroute6",
        "noproxyarp",
    ]
    if 4 not in families:
        lines.append("noip")
    lines.append("+ipv6" if 6 in families else "noipv6")
    lines += [f"ifname {options.ifname}", f"ip-up-script {pppd_word(str(ip_up))}", f"ip-down-script {pppd_word(str(ip_down))}"]
    if options.pppd.unit is not None:
        lines.append(f"unit {options.pppd.unit}")
    if debug:
        lines.append("debug")
    return "\n".join(lines) + "\n"


def _ip_up_script(report: Path) -> str:
    target = shlex.quote(str(report))
    return (
        "#!/bin/sh\n"
        "# larappp: pppd runs this when IPCP is up; it only reports what IPCP negotiated.\n"
        f"PATH={SEARCH_PATH}\n"
        "umask 077\n"
        "printf 'IFNAME=%s\\nIPLOCAL=%s\\nIPREMOTE=%s\\nDNS1=%s\\nDNS2=%s\\n' "
        '"$IFNAME" "$IPLOCAL" "$IPREMOTE" "$DNS1" "$DNS2"'
        f" >{target}.tmp && mv -f {target}.tmp {target}\n"
    )


def _ip_down_script(report: Path) -> str:
    return (
        "#!/bin/sh\n"
        "# larappp: pppd runs this when IPCP is down.\n"
        f"PATH={SEARCH_PATH}\n"
        f"rm -f {shlex.quote(str(report))}\n"
    )


@dataclass(frozen=True)
class IpcpReport:
    """What the ip-up hook reported: pppd's view of IPCP (DNS from the network)."""

    ifname: str
    local: IPv4Address | None
    peer: IPv4Address | None
    dns: tuple[IPv4Address, ...]


def parse_ipcp_report(text: str) -> IpcpReport:
    """Parse the ip-up hook's KEY=value lines; unknown keys and empty values are skipped."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and value.strip():
            values[key.strip()] = value.strip()

    def v4(key: str) -> IPv4Address | None:
        try:
            address = ip_address(values.get(key, ""))
        except ValueError:
            return None
        return address if isinstance(address, IPv4Address) else None

    dns = tuple(a for a in (v4("DNS1"), v4("DNS2")) if a is not None)
    return IpcpReport(values.get("IFNAME", ""), v4("IPLOCAL"), v4("IPREMOTE"), tuple(dict.fromkeys(dns)))


def _write(path: Path, text: str, mode: int) -> None:
    """Create `path` with `mode` from the start (never readable by others, even briefly)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, mode)  # the umask may have narrowed it


class PppdFolder:
    """One session's pppd runtime folder (<runtime_dir>/pppd/<ifname>): written, read, removed."""

    def __init__(self, runtime_dir: str | Path, ifname: str) -> None:
        self.path = Path(runtime_dir) / "pppd" / ifname
        self._made = False

    @property
    def options_file(self) -> Path:
        return self.path / OPTIONS_NAME

    def write(self, options: EngineOptions, *, line: Line = BRIDGED, debug: bool = False) -> list[tuple[str, str]]:
        """Write the folder; returns the bind mounts that make it pppd's /etc/ppp."""
        folder = self.path
        if folder.is_symlink():
            folder.unlink()
        elif folder.exists():
            shutil.rmtree(folder, ignore_errors=True)  # left by a larappp that was killed
        folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.mkdir(mode=0o700)
        self._made = True
        os.chmod(folder, 0o700)
        os.chmod(folder.parent, 0o700)
        report = folder / REPORT_NAME
        ip_up, ip_down = folder / "ip-up", folder / "ip-down"
        _write(ip_up, _ip_up_script(report), 0o700)
        _write(ip_down, _ip_down_script(report), 0o700)
        _write(self.options_file, options_file_text(options, ip_up=ip_up, ip_down=ip_down, line=line, debug=debug), 0o600)
        # pppd's view of /etc/ppp/options when isolated: nothing beyond larappp's own file.
        _write(folder / "options", "# larappp: empty on purpose; pppd reads larappp.options\n", 0o600)
        binds: list[tuple[str, str]] = []
        if os.path.isdir(ETC_PPP):
            binds.append((str(folder), ETC_PPP))
        with contextlib.suppress(KeyError):
            ppprc = Path(pwd.getpwuid(os.getuid()).pw_dir) / ".ppprc"
            if ppprc.is_file():
                binds.append((str(folder / "options"), str(ppprc)))
        return binds

    def ipcp_report(self) -> IpcpReport | None:
        """What the ip-up hook reported, once it reported an address."""
        with contextlib.suppress(FileNotFoundError):
            report = parse_ipcp_report((self.path / REPORT_NAME).read_text())
            if report.local is not None:
                return report
        return None

    def remove(self) -> list[str]:
        """Remove the folder (and pppd/ when no other session's folder is in it)."""
        if not self._made:
            return []
        self._made = False
        try:
            shutil.rmtree(self.path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            return [f"runtime folder {self.path}: {exc}"]
        with contextlib.suppress(OSError):
            self.path.parent.rmdir()
        return []


def host_options_in_effect() -> list[str]:
    """Options in /etc/ppp/options that larappp's file does not state (when not isolated)."""
    stated = {"asyncmap", "auth", "crtscts", "lock", "hide-password", "modem", "lcp-echo-interval",
              "lcp-echo-failure", "noipx", "noauth", "nocrtscts", "nolock", "local"}
    try:
        text = Path(ETC_PPP, "options").read_text(errors="replace")
    except OSError:
        return []
    found = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if words and words[0] not in stated:
            found.append(words[0])
    return found
