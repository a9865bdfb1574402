"""larappp.transport.dns: the resolv.conf fragment, and the commands of the other modes."""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv6Address
from pathlib import Path

import pytest

from larappp.errors import ConfigError, NetworkSetupError
from larappp.transport.dns import DnsWriter, resolve_mode


def nothing_installed(program: str) -> str | None:
    return None


class Recorder:
    """A stand-in for subprocess: records commands, can fail on demand."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[tuple[list[str], str | None]] = []
        self.fail_on = fail_on

    def __call__(self, command: Sequence[str], stdin: str | None) -> None:
        self.calls.append((list(command), stdin))
        if self.fail_on is not None and self.fail_on in command:
            raise NetworkSetupError(f"{command[0]} failed")


def test_file_mode_writes_replaces_and_removes(tmp_path: Path) -> None:
    directory = tmp_path / "resolv.conf.d"
    writer = DnsWriter("ppp0", "file", directory=directory)
    writer.apply(["10.11.12.13", "2001:4860:4860::8888", IPv6Address("fe80::1"), "10.11.12.13"])
    path = directory / "ppp0.conf"
    assert writer.path == path
    assert path.read_text() == (
        "# DNS servers learned by larappp on ppp0\n"
        "nameserver 10.11.12.13\n"
        "nameserver 2001:4860:4860::8888\n"
        "nameserver fe80::1%ppp0\n"  # link-local needs its zone
    )
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    writer.apply(["192.0.2.53"], search=["example.net"])
    assert path.read_text().splitlines()[1:] == ["nameserver 192.0.2.53", "search example.net"]
    assert [p.name for p in directory.iterdir()] == ["ppp0.conf"]  # no temporary left over
    writer.remove()
    assert not path.exists()
    writer.remove()  # twice is harmless


def test_empty_list_removes_and_none_mode_does_nothing(tmp_path: Path) -> None:
    writer = DnsWriter("ppp1", "file", directory=tmp_path)
    writer.apply(["192.0.2.1"])
    writer.apply([])
    assert not (tmp_path / "ppp1.conf").exists() and writer.servers == ()
    quiet = DnsWriter("ppp1", "none", directory=tmp_path, runner=Recorder())
    quiet.apply(["192.0.2.1"])
    quiet.remove()
    assert list(tmp_path.iterdir()) == [] and quiet.servers == ()


def test_resolvconf_mode_commands() -> None:
    runner = Recorder()
    writer = DnsWriter("ppp0", "resolvconf", runner=runner)
    writer.apply(["192.0.2.53", "2001:db8::53"])
    writer.remove()
    assert runner.calls == [
        (
            ["resolvconf", "-a", "ppp0.larappp"],
            (
                "# DNS servers learned by larappp on ppp0\nnameserver 192.0.2.53\n"
                "nameserver 2001:db8::53\n"
            ),
        ),
        (["resolvconf", "-d", "ppp0.larappp"], None),
    ]


def test_resolved_mode_commands_and_revert_on_a_gone_link() -> None:
    runner = Recorder(fail_on="revert")
    writer = DnsWriter("ppp0", "resolved", runner=runner)
    writer.apply(["192.0.2.53", "2001:db8::53"], search=["corp.example"])
    writer.remove()  # resolvectl revert fails (link gone): not an error
    assert [call[0] for call in runner.calls] == [
        ["resolvectl", "dns", "ppp0", "192.0.2.53", "2001:db8::53"],
        ["resolvectl", "domain", "ppp0", "corp.example"],
        ["resolvectl", "revert", "ppp0"],
    ]


def test_auto_mode_picks_what_the_host_runs(tmp_path: Path) -> None:
    (tmp_path / "io.systemd.Resolve").touch()
    everything = {"resolvectl": "/usr/bin/resolvectl", "resolvconf": "/sbin/resolvconf"}
    assert resolve_mode("auto", which=everything.get, resolved_dir=tmp_path) == "resolved"
    no_daemon = tmp_path / "not-running"
    assert resolve_mode("auto", which=everything.get, resolved_dir=no_daemon) == "resolvconf"
    assert resolve_mode("auto", which=nothing_installed, resolved_dir=tmp_path) == "file"
    assert resolve_mode("file") == "file"
    assert DnsWriter("ppp0", "auto", which=nothing_installed, directory=tmp_path).mode == "file"


def test_errors_name_what_to_change(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="use one of"):
        DnsWriter("ppp0", "dnsmasq")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        DnsWriter("../etc", "file")
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("")
    writer = DnsWriter("ppp0", "file", directory=blocker / "sub")
    with pytest.raises(NetworkSetupError, match="DNS directory"):
        writer.apply(["192.0.2.1"])
    with pytest.raises(ValueError):
        DnsWriter("ppp0", "file", directory=tmp_path).apply(["not-an-address"])
    failing = DnsWriter("ppp0", "resolvconf", runner=Recorder(fail_on="-a"))
    with pytest.raises(NetworkSetupError):
        failing.apply(["192.0.2.1"])


def test_resolvconf_is_never_taken_from_the_inherited_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from larappp.transport import dns

    marker = tmp_path / "ran"
    planted = tmp_path / "bin" / "resolvconf"
    planted.parent.mkdir()
    planted.write_text(f"#!/bin/sh\necho \"$PATH\" > {marker}\n")
    planted.chmod(0o755)
    monkeypatch.setenv("PATH", f"{planted.parent}:/usr/bin:/bin")
    writer = DnsWriter("lara7", "resolvconf", directory=tmp_path)  # the runner is the real one
    try:
        writer.apply(["192.0.2.53"])
    except NetworkSetupError as exc:
        assert "resolvconf" in str(exc)  # not installed here, or it refused the test record
    else:
        writer.remove()  # a real resolvconf took it: give it back
    assert not marker.exists(), "a resolvconf from $PATH ran"
    assert dns._which("resolvconf") != str(planted)
