"""The LARA-R6 udev rule: udev itself parses it without a complaint, and its logic, run
on the module's device tree as the kernel reports it, names the ports, keeps
ModemManager off and starts/stops the instance."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
from dataclasses import dataclass, field

import pytest

from tests.e2e.conftest import ROOT

RULE = ROOT / "udev" / "77-larappp-lara-r6.rules"
TOKEN = re.compile(r'\s*([A-Z_]+)(?:\{([^}]*)\})?\s*(==|!=|\+=|:=|=)\s*"([^"]*)"\s*(?:,|$)')
# The module's USB identities (Linux drivers/usb/serial/option.c): LARA-R6 00B and the
# three USB modes of LARA-R6 01B.
LARA_R6_IDS = [("05c6", "908b"), ("1546", "1311"), ("1546", "1312"), ("1546", "1313")]


def _parse() -> list[list[tuple[str, str | None, str, str]]]:
    rules = []
    for number, line in enumerate(RULE.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        tokens, pos = [], 0
        while pos < len(line):
            m = TOKEN.match(line, pos)
            assert m, f"{RULE.name}:{number}: cannot read {line[pos:]!r}"
            tokens.append((m.group(1), m.group(2), m.group(3), m.group(4)))
            pos = m.end()
        rules.append(tokens)
    return rules


@dataclass
class Device:
    """A sysfs device as udev sees it: its own subsystem and attributes, then its parents'."""

    subsystem: str
    kernel: str
    attrs: dict[str, str] = field(default_factory=dict)
    parents: list[Device] = field(default_factory=list)


@dataclass
class Outcome:
    env: dict[str, str]
    symlinks: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    run: list[str] = field(default_factory=list)


def _matches(pattern: str, value: str) -> bool:
    return any(fnmatch.fnmatchcase(value, alt) for alt in pattern.split("|"))


def _apply(device: Device, action: str, env: dict[str, str] | None = None) -> Outcome:
    """udev's evaluation of this rule file (match keys first, then assignments, GOTO to LABEL)."""
    out = Outcome(env=dict(env or {}))
    rules = _parse()
    labels = {t[0][3]: i for i, t in enumerate(rules) if t[0][0] == "LABEL"}
    index = 0
    while index < len(rules):
        tokens = rules[index]
        index += 1
        own = [t for t in tokens if t[0] in ("ACTION", "SUBSYSTEM", "ENV") and t[2] in ("==", "!=")]
        parent_keys = [t for t in tokens if t[0] in ("SUBSYSTEMS", "ATTRS")]
        ok = True
        for key, attr, op, value in own:
            actual = {"ACTION": action, "SUBSYSTEM": device.subsystem}.get(key, out.env.get(attr or "", ""))
            ok = ok and (_matches(value, actual) == (op == "=="))
        matched: Device | None = None
        if ok and parent_keys:
            for candidate in [device, *device.parents]:
                if all(
                    _matches(v, candidate.subsystem) if k == "SUBSYSTEMS"
                    else (a or "") in candidate.attrs and _matches(v, candidate.attrs[a or ""])
                    for k, a, _, v in parent_keys
                ):
                    matched = candidate
                    break
            ok = matched is not None
        if not ok:
            continue

        def expand(text: str, matched: Device | None = matched) -> str:
            text = re.sub(r"\$env\{(\w+)\}", lambda m: out.env.get(m.group(1), ""), text)
            text = re.sub(r"\$attr\{(\w+)\}", lambda m: device.attrs.get(m.group(1)) or (matched.attrs.get(m.group(1), "") if matched else ""), text)
            return text.replace("$id", matched.kernel if matched else "")

        for key, attr, op, value in tokens:
            if key == "ENV" and op == "=":
                out.env[attr or ""] = expand(value)
            elif key == "ENV" and op == "+=":
                out.env[attr or ""] = (out.env.get(attr or "", "") + " " + expand(value)).strip()
            elif key == "SYMLINK":
                out.symlinks.append(expand(value))
            elif key == "TAG":
                out.tags.append(value)
            elif key == "RUN":
                out.run.append(expand(value))
            elif key == "GOTO":
                index = labels[value]
    return out


def _port(vendor: str, product: str, interface: int, serial: str | None = "1478200b", subsystem: str = "tty") -> Device:
    usb_device = Device("usb", "1-1.4", {"idVendor": vendor, "idProduct": product} | ({"serial": serial} if serial else {}))
    usb_interface = Device("usb", f"1-1.4:1.{interface}", {"bInterfaceNumber": f"{interface:02x}"})
    serial_port = Device("usb-serial", f"ttyUSB{interface}")
    return Device(subsystem, f"ttyUSB{interface}", {"dev": "188:0"}, [serial_port, usb_interface, usb_device])


@pytest.mark.parametrize(("vendor", "product"), LARA_R6_IDS)
def test_each_port_gets_a_stable_name_and_modemmanager_is_kept_off(vendor: str, product: str) -> None:
    names = {}
    for interface, name in enumerate(["diag", "at0", "at1", "at2"]):
        out = _apply(_port(vendor, product, interface), "add")
        assert out.env["ID_MM_DEVICE_IGNORE"] == "1"
        assert out.symlinks == [f"lara-r6/1478200b/{name}"]
        names[name] = out
    assert names["at0"].tags == ["systemd"]
    assert names["at0"].env["SYSTEMD_WANTS"] == "larappp@lara-r6-1478200b.service"
    assert all("SYSTEMD_WANTS" not in names[n].env for n in ("diag", "at1", "at2"))


def test_the_network_interface_of_the_module_is_ignored_by_modemmanager_too() -> None:
    out = _apply(_port("1546", "1312", 4, subsystem="net"), "add")
    assert out.env["ID_MM_DEVICE_IGNORE"] == "1"
    assert out.symlinks == [] and out.tags == []


def test_a_module_without_serial_number_is_named_by_its_usb_port() -> None:
    out = _apply(_port("1546", "1311", 1, serial=None), "add")
    assert out.symlinks == ["lara-r6/usb-1-1.4/at0"]


@pytest.mark.parametrize(("vendor", "product"), [("1546", "1341"), ("05c6", "9091"), ("1546", "01a8")])
def test_other_devices_are_left_alone(vendor: str, product: str) -> None:
    """LARA-L6 (1546:1341), another Qualcomm device, a u-blox GNSS receiver."""
    out = _apply(_port(vendor, product, 1), "add")
    assert out.env == {} and out.symlinks == [] and out.run == []


def test_unplugging_the_module_stops_its_instance() -> None:
    added = _apply(_port("1546", "1311", 1), "add")
    removed = _apply(_port("1546", "1311", 1), "remove", env=added.env)
    assert removed.run == ["/usr/bin/systemctl --no-block stop larappp@lara-r6-1478200b.service"]
    other = _apply(_port("1546", "1311", 2), "remove", env=_apply(_port("1546", "1311", 2), "add").env)
    assert other.run == []


@pytest.mark.skipif(shutil.which("udevadm") is None, reason="udevadm is not installed (Debian package udev)")
@pytest.mark.skipif(shutil.which("unshare") is None, reason="util-linux unshare is missing")
def test_udev_reads_the_rule_without_a_complaint() -> None:
    """udevadm test in a private mount namespace where /etc/udev/rules.d holds only this rule."""
    script = 'mount -t tmpfs larappp-test /etc/udev/rules.d && cp "$1" /etc/udev/rules.d/ && udevadm test --action=add /sys/class/tty/ptmx'
    out = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(RULE)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    log = out.stdout + out.stderr
    assert f"Reading rules file: /etc/udev/rules.d/{RULE.name}" in log, log[-2000:]
    complaints = [line for line in log.splitlines() if f"{RULE.name}:" in line]
    assert complaints == []
