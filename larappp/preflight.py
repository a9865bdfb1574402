"""`larappp check`: what can be known before touching the module.

Config rules (already enforced by loading), the host's ephemeral port range against the
module's embedded port filter (app note §4.3), which PPP backend this kernel allows, and
whether another process (ModemManager above all) holds or probes the module's ports.
"""

from __future__ import annotations

import errno
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from larappp import nftrules
from larappp.config import Config
from larappp.errors import ConfigError, NetworkSetupError, PortError
from larappp.lara_r6 import ports
from larappp.transport import devusers, hostports, nft
from larappp.transport.dns import PINNED_PATH

MODEMMANAGER = "ModemManager"
MODEMMANAGER_FIX = (
    "install udev/77-larappp-lara-r6.rules (it tags the module's ports ID_MM_DEVICE_IGNORE=1) "
    "or stop it: systemctl disable --now ModemManager"
)


@dataclass
class CheckReport:
    """Outcome of every preflight check, printable as lines or JSON."""

    ok: bool = True
    items: list[tuple[str, bool, str]] = field(default_factory=list)

    def add(self, name: str, ok: bool, detail: str) -> None:
        self.items.append((name, ok, detail))
        self.ok = self.ok and ok

    def lines(self) -> list[str]:
        out = []
        for name, ok, detail in self.items:
            tag = "ok  " if ok else "FAIL"
            first, *rest = detail.splitlines() or [""]
            out.append(f"[{tag}] {name}: {first}")
            out.extend(f"       {line}" for line in rest)
        return out

    def to_json(self) -> dict[str, object]:
        return {"ok": self.ok, "checks": [{"name": n, "ok": o, "detail": d} for n, o, d in self.items]}


def ppp_backend_choice() -> tuple[str, str]:
    """('pppd' | 'builtin', why): pppd where /dev/ppp opens and pppd is installed."""
    try:
        fd = os.open("/dev/ppp", os.O_RDWR)
    except OSError as exc:
        reason = "no /dev/ppp" if exc.errno == errno.ENOENT else f"/dev/ppp cannot be opened ({os.strerror(exc.errno or 0)})"
        kernel = "the kernel has no PPP support" if exc.errno in (errno.ENOENT, errno.ENODEV, errno.ENXIO) else reason
        return "builtin", f"{kernel} ({reason}): the built-in engine over TUN will carry PPP"
    os.close(fd)
    if shutil.which("pppd") is None:
        return "builtin", "/dev/ppp works but pppd is not installed (apt-get install ppp): using the built-in engine"
    return "pppd", "/dev/ppp works and pppd is installed"


def tun_available() -> tuple[bool, str]:
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR)
    except OSError as exc:
        return False, f"/dev/net/tun cannot be opened ({os.strerror(exc.errno or 0)}): load the tun module"
    os.close(fd)
    return True, "/dev/net/tun opens"


def _host_port_report(embpf: ports.PortRange) -> tuple[ports.PortCheckReport, str]:
    """This namespace's ephemeral range, reserved ports and bound sockets against `embpf`."""
    reserved_text = hostports.read_reserved_ports()
    bound = hostports.bound_ports(embpf.first, embpf.last)
    ephemeral = ports.PortRange(*hostports.read_ephemeral_range())
    return ports.check_host_ports(embpf, ephemeral, ports.parse_reserved_ports(reserved_text), bound), reserved_text


def _reserve(embpf: ports.PortRange, reserved_text: str) -> str:
    try:
        hostports.write_reserved_ports(ports.reserved_ports_with(reserved_text, embpf))
    except OSError as exc:
        raise NetworkSetupError(
            f"cannot write /proc/sys/net/ipv4/ip_local_reserved_ports ({exc.strerror}): run as root"
        ) from None
    return f"reserved {embpf} in ip_local_reserved_ports (now {hostports.read_reserved_ports()})"


def check_ports(
    config: Config, *, fix: bool, persist: bool = False, sysctl_dir: Path = hostports.SYSCTL_DIR
) -> tuple[bool, str]:
    """Compare the module's UEMBPF range with this namespace's ephemeral ports and bound sockets.

    `fix` reserves the range now; `persist` also writes the reservation as a sysctl.d
    drop-in so that it holds from the next boot on.
    """
    if not config.modem.embpf:
        return True, "modem.embpf is not set: the module's embedded applications share the host's ports (app note §4.3.2 advises setting it)"
    embpf = ports.PortRange.parse(config.modem.embpf)
    report, reserved_text = _host_port_report(embpf)
    lines = []
    if not report.ok and fix:
        lines.append(_reserve(embpf, reserved_text))
        report, reserved_text = _host_port_report(embpf)
    if persist:
        dropin = hostports.write_reserved_ports_dropin(ports.reserved_ports_with(reserved_text, embpf), sysctl_dir)
        lines.append(f"wrote {dropin}: the reservation holds after a reboot")
    lines += report.describe()
    if not report.ok and not fix:
        lines.append("run 'larappp check --fix-ports' to reserve the module's range")
    return report.ok, "\n".join(lines)


def host_ports_before_up(config: Config) -> list[str]:
    """What `up` does about the host's ports before dialling (app note §4.3), as lines to show.

    With modem.fix_host_ports the module's range is reserved on the host; without, a
    collision is only reported, with what to change.
    """
    if not config.modem.embpf:
        return []
    report, _ = _host_port_report(ports.PortRange.parse(config.modem.embpf))
    if report.ok:
        return []
    if not config.modem.fix_host_ports:
        return [
            f"host ports: {report.describe()[0]}; set modem.fix_host_ports = true or run 'larappp check --fix-ports'"
        ]
    ok, detail = check_ports(config, fix=True)
    first, *rest = detail.splitlines()
    return [f"host ports: {first}"] + ([] if ok else [f"host ports: {line}" for line in rest])


#: the kernel lists its legacy iptables (x_tables) tables here, "nat" once one was used (the
#: calling thread's namespace: /proc/net is the process's)
LEGACY_TABLES = Path("/proc/thread-self/net/ip_tables_names")
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii").strip()
    except OSError:
        return ""


def _legacy_nat_table() -> bool:
    return "nat" in _read(LEGACY_TABLES).split()


def check_nat(config: Config) -> tuple[bool, str]:
    """Whether source NAT on a session's link (nftables, iptables-nft, iptables-legacy) can give
    a flow a source port inside the module's UEMBPF range (app note §4.3, figure 5: router mode)."""
    wants_nat = [s.name for s in config.sessions if s.nat]
    if not config.modem.embpf:
        return True, "modem.embpf is not set: there is no module range for NAT to keep out of"
    embpf = ports.PortRange.parse(config.modem.embpf)
    if not nft.installed():
        if wants_nat:
            return False, f"{', '.join(wants_nat)} set nat = true but nft is not installed: {nft.INSTALL_HINT}"
        return True, f"nft is not installed, so NAT rules cannot be read here ({nft.INSTALL_HINT} to check them)"
    try:
        ruleset = nft.ruleset()
    except NetworkSetupError as exc:
        return not wants_nat, f"{exc}"
    ok, lines = True, []
    for session in config.sessions:
        ifname = session.name
        foreign = [r for r in nftrules.find_nat_rules(ruleset, ifname) if not r.larappp]
        hits = [r for r in foreign if r.hits(embpf)]
        if session.nat:
            lines.append(f"{ifname}: larappp masquerades IPv4 leaving it (nat = true) into ports outside {embpf}")
            if _read(IP_FORWARD) == "0":
                lines.append(f"{ifname}: net.ipv4.ip_forward is 0, so nothing from the LAN is routed to it yet: "
                             "sysctl -w net.ipv4.ip_forward=1 (router mode)")
            lines += [f"{ifname}: {r.describe(embpf)}; larappp's NAT binds flows first "
                      f"(priority {nftrules.NAT_PRIORITY}), so this rule translates none" for r in hits]
            continue
        for rule in hits:
            ok = False
            if rule.iptables:
                fix = f"give it --to-ports outside {embpf} (e.g. {_free_example(embpf)}), or set nat = true in this session"
            else:
                fix = f"give it `to :{_free_example(embpf)}` (ports outside {embpf}), or set nat = true in this session"
            lines.append(f"{ifname}: {rule.describe(embpf)}, whose replies the module keeps (app note §4.3): {fix}")
        if not hits:
            lines.append(f"{ifname}: no source NAT reaches it with a port of {embpf}")
    if _legacy_nat_table() and not all(s.nat for s in config.sessions):
        ok = False
        lines.append(
            "iptables-legacy has a nat table here, whose rules nft cannot read: set nat = true in the session "
            f"(larappp's NAT binds first), or make MASQUERADE/SNAT on {', '.join(s.name for s in config.sessions if not s.nat)} "
            f"use --to-ports outside {embpf} and move them to iptables-nft (an empty table goes with "
            "modprobe -r iptable_nat)"
        )
    return ok, "\n".join(lines)


def _free_example(embpf: ports.PortRange) -> str:
    """The largest range of unprivileged ports outside `embpf`, as a fix to suggest."""
    rules = ports.nat_port_plan(embpf)
    return str(max((r.translated for r in rules if r.translated.first >= 1024), key=lambda r: r.size))


def module_ports(config: Config) -> list[str]:
    """The device paths larappp opens: modem.port and each session's own port, once each."""
    ports = [config.modem.port, *(s.port for s in config.sessions if s.port)]
    return list(dict.fromkeys(p for p in ports if p.startswith("/")))


def describe_user(port: str, user: devusers.DeviceUser) -> str:
    """One line: who holds `port` open and what to do about it."""
    if user.name == MODEMMANAGER:
        return f"{port} is held open by ModemManager (pid {user.pid}): {MODEMMANAGER_FIX}"
    return f"{port} is held open by {user.name} (pid {user.pid}): close it there or stop that process (kill {user.pid})"


def _running_larappp(config: Config) -> int | None:
    """The pid of the larappp that is up with this config (it holds the ports by right)."""
    from larappp import runtime

    daemon = runtime.Daemon.find(runtime.RuntimePaths.of(config))
    if daemon is None:
        return None
    daemon.close()
    return daemon.pid


def check_port_users(config: Config) -> tuple[bool, str]:
    """No process but a running larappp holds the module's ports, and ModemManager does not probe them."""
    ports = [p for p in module_ports(config) if os.path.exists(p)]
    own = _running_larappp(config)
    modemmanager = devusers.processes_named(MODEMMANAGER)
    problems, notes = [], []
    for port in ports:
        users = devusers.processes_using(port)
        problems += [describe_user(port, u) for u in users if u.pid != own]
        notes += [f"{port} is in use by larappp (pid {u.pid}), which is up" for u in users if u.pid == own]
        if modemmanager and not any(u.name == MODEMMANAGER for u in users):
            # ModemManager learns of ports from udev only: a port udev has no entry for (a pty,
            # an RFC 2217 bridge's) is invisible to it.
            props = devusers.udev_properties(port)
            if props is not None and "1" not in (props.get("ID_MM_DEVICE_IGNORE"), props.get("ID_MM_PORT_IGNORE")):
                problems.append(
                    f"{port} may be probed by ModemManager (pid {modemmanager[0]}), udev does not tag it "
                    f"ID_MM_DEVICE_IGNORE: {MODEMMANAGER_FIX}"
                )
    if problems:
        return False, "\n".join(problems + notes)
    if not ports:
        return True, "no module port to look at"
    mm = "; ModemManager ignores them" if modemmanager else "; ModemManager is not running"
    return True, "\n".join(notes or [f"no other process holds {', '.join(ports)}{mm}"])


def run_checks(config: Config, *, fix_ports: bool = False, persist_ports: bool = False) -> CheckReport:
    report = CheckReport()
    report.add("config", True, f"{config.source}: {len(config.sessions)} session(s), rules of app note §2.1/§4.1.3 hold")
    ok, detail = check_ports(config, fix=fix_ports, persist=persist_ports)
    report.add("host ports vs UEMBPF", ok, detail)
    ok, detail = check_nat(config)
    report.add("NAT vs UEMBPF", ok, detail)
    backend, why = ppp_backend_choice()
    wanted = {s.backend for s in config.sessions}
    if "pppd" in wanted and backend != "pppd":
        report.add("ppp backend", False, f"a session asks for backend = \"pppd\" but {why}")
    else:
        report.add("ppp backend", True, f"auto -> {backend}: {why}")
    if backend == "builtin" or "builtin" in wanted:
        tun_ok, tun_why = tun_available()
        report.add("tun", tun_ok, tun_why)
    if not config.uses_simulator:
        port = config.modem.port
        if port.startswith("/") and not os.path.exists(port):
            report.add("modem port", False, f"{port} does not exist: plug the module in or fix modem.port")
        else:
            report.add("modem port", True, port)
        ok, detail = check_port_users(config)
        report.add("port users", ok, detail)
    return report


def check_startable(config: Config, *, run_ppp: bool = True) -> None:
    """Raise the first thing that would stop `larappp up` which can be known before anything is
    started or written: a port path that does not exist, a backend, TUN or DNS tool missing."""
    if config.uses_simulator:
        from larappp.sim.scenario import Scenario

        sim = config.sim
        try:
            Scenario(
                operator=sim.operator, grant=sim.grant, registration_delay=sim.registration_delay,
                reboot_time=sim.reboot_time, echo=sim.echo, urc_noise=sim.urc_noise,
            )
        except ConfigError as exc:
            raise ConfigError(f"{config.source}: [sim] {exc}") from None
    else:
        for port in module_ports(config):
            if not os.path.exists(port):
                raise PortError(f"{port} does not exist: plug the module in, or fix the port in {config.source}")
    if not run_ppp:
        return
    backend, why = ppp_backend_choice()
    for session in config.sessions:
        where = f"{config.source}: the session with cid {session.cid}"
        if os.path.exists(f"/sys/class/net/{session.name}"):
            # A TUN or ppp interface of a larappp goes with its process: this one is someone else's.
            raise ConfigError(f"{where}: an interface named {session.name} exists already here: set ifname to another name")
        if session.backend == "pppd" and backend != "pppd":
            raise ConfigError(f'{where} sets backend = "pppd", which cannot run here ({why.split(":")[0]}): set backend = "auto"')
        if (session.backend if session.backend != "auto" else backend) == "builtin":
            ok, tun_why = tun_available()
            if not ok:
                raise NetworkSetupError(tun_why)
        wants = [key for key, on in (("nat", session.nat), ("firewall_ipv6", session.firewall_ipv6)) if on]
        if wants and not nft.installed():
            raise ConfigError(f"{where} sets {wants[0]} = true but nft is not installed: {nft.INSTALL_HINT}, "
                              f"or set {wants[0]} = false")
        tool = {"resolved": "resolvectl", "resolvconf": "resolvconf"}.get(session.dns)
        if tool is not None and shutil.which(tool, path=PINNED_PATH) is None:
            raise ConfigError(f'{where} sets dns = "{session.dns}" but {tool} is not installed: set dns = "auto" or "file"')
