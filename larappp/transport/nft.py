"""nftables through Debian's `nft -j`: JSON commands in (`-f -`), the ruleset as JSON out.

Why the command and not libnftables' Python binding: the binding (python3-nftables) is
Debian's, built for Debian's /usr/bin/python3, and larappp runs on its own Python (3.11
in a virtual environment or pyenv), which cannot import it; `nft` itself speaks the same
JSON (libnftables-json(5)), so nothing is parsed from text. Like resolvconf and pppd,
nft is looked up in a fixed PATH only, never in an inherited one.

The rules themselves are built in larappp.nftrules. A `SessionTable` puts one session's
table in and takes it out whole, and says what to record for a larappp killed before
taking it out (larappp.runtime removes it then).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Callable, Sequence
from typing import Any

from larappp import nftrules
from larappp.errors import NetworkSetupError
from larappp.lara_r6.ports import PortRange
from larappp.transport.dns import PINNED_PATH

__all__ = ["SessionTable", "apply", "apply_async", "installed", "ruleset"]

#: how long one nft run may take (it changes the ruleset in one netlink transaction)
TIMEOUT_S = 15.0
INSTALL_HINT = "apt-get install nftables"


def installed() -> bool:
    return shutil.which("nft", path=PINNED_PATH) is not None


def _argv(*args: str) -> list[str]:
    program = shutil.which("nft", path=PINNED_PATH)
    if program is None:
        raise NetworkSetupError(f"nft is not installed (looked in {PINNED_PATH}): {INSTALL_HINT}")
    return [program, "-j", *args]


def _payload(commands: Sequence[dict[str, Any]]) -> str:
    return json.dumps({"nftables": list(commands)})


def _check(what: str, returncode: int, stderr: str) -> None:
    if returncode == 0:
        return
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error:")]
    detail = (errors or lines or [f"exit status {returncode}"])[0]
    raise NetworkSetupError(f"nft refused to {what}: {detail}")


def apply(commands: Sequence[dict[str, Any]], what: str) -> None:
    """Run nft JSON `commands` as one transaction; `what` says what they do, for the error."""
    try:
        done = subprocess.run(_argv("-f", "-"), input=_payload(commands), capture_output=True, text=True,
                              timeout=TIMEOUT_S, check=False, env={"PATH": PINNED_PATH, "LANG": "C"})
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetworkSetupError(f"nft failed to {what}: {exc}") from None
    _check(what, done.returncode, done.stderr)


async def apply_async(commands: Sequence[dict[str, Any]], what: str) -> None:
    """`apply` without blocking the event loop."""
    try:
        process = await asyncio.create_subprocess_exec(
            *_argv("-f", "-"), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env={"PATH": PINNED_PATH, "LANG": "C"},
        )
    except OSError as exc:
        raise NetworkSetupError(f"nft failed to {what}: {exc}") from None
    try:
        _, stderr = await asyncio.wait_for(process.communicate(_payload(commands).encode()), TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise NetworkSetupError(f"nft did not {what} within {TIMEOUT_S:g} s") from None
    assert process.returncode is not None
    _check(what, process.returncode, stderr.decode(errors="replace"))


def ruleset() -> dict[str, Any]:
    """This network namespace's whole ruleset (`nft -j list ruleset`)."""
    try:
        done = subprocess.run(_argv("list", "ruleset"), capture_output=True, text=True, timeout=TIMEOUT_S,
                              check=False, env={"PATH": PINNED_PATH, "LANG": "C"})
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetworkSetupError(f"nft failed to list the ruleset: {exc}") from None
    _check("list the ruleset", done.returncode, done.stderr)
    try:
        parsed = json.loads(done.stdout or '{"nftables": []}')
    except json.JSONDecodeError as exc:
        raise NetworkSetupError(f"nft listed a ruleset that is not JSON ({exc}): update nftables") from None
    if not isinstance(parsed, dict):
        raise NetworkSetupError("nft listed a ruleset that is not a JSON object: update nftables")
    return parsed


class SessionTable:
    """One session's table (`inet larappp_<ifname>`): NAT on the link, the IPv6 inbound
    firewall; in and out whole."""

    def __init__(self, ifname: str, *, nat: bool, embpf: PortRange | None, firewall_ipv6: bool = False) -> None:
        self.ifname = ifname
        self.nat = nat
        self.embpf = embpf
        self.firewall_ipv6 = firewall_ipv6
        self.installed = False

    @property
    def wanted(self) -> bool:
        """Whether the session asks for any rule at all."""
        return self.nat or self.firewall_ipv6

    @property
    def name(self) -> str:
        return nftrules.table_name(self.ifname)

    async def install(self, record: Callable[[], None] = lambda: None) -> None:
        """Create the table (replacing one a killed larappp left); NetworkSetupError when nft
        refuses. `record()` is called while `record()` of this object names the table, before
        it exists: a larappp killed in between leaves a record of nothing, whose removal is harmless."""
        commands = nftrules.session_table(self.ifname, nat=self.nat, embpf=self.embpf,
                                          firewall_ipv6=self.firewall_ipv6)
        self.installed = True
        record()
        try:
            await apply_async(commands, f"add table {nftrules.FAMILY} {self.name} for {self.ifname}")
        except NetworkSetupError:
            self.installed = False
            record()
            raise

    async def remove(self) -> list[str]:
        """Delete the table; what could not be undone (nothing when it was gone already)."""
        if not self.installed:
            return []
        try:
            await apply_async(nftrules.delete_table(self.ifname), f"delete table {nftrules.FAMILY} {self.name}")
        except NetworkSetupError as exc:
            return [str(exc)]
        self.installed = False
        return []

    def describe(self) -> str:
        """The table and what it holds: "inet larappp_lara1: nat, firewall_ipv6"."""
        parts = [name for name, on in (("nat", self.nat), ("firewall_ipv6", self.firewall_ipv6)) if on]
        return f"{nftrules.FAMILY} {self.name}: {', '.join(parts)}"

    def record(self) -> dict[str, str] | None:
        """What the host record keeps: the table, while it may exist."""
        return {"family": nftrules.FAMILY, "ifname": self.ifname} if self.installed else None


async def remove_recorded(record: dict[str, Any]) -> str:
    """Remove a table a dead larappp recorded; one line saying what happened."""
    ifname = str(record.get("ifname", ""))
    name = nftrules.table_name(ifname)
    try:
        await apply_async(nftrules.delete_table(ifname), f"delete table {nftrules.FAMILY} {name}")
    except NetworkSetupError as exc:
        return f"nftables table {name} NOT removed: {exc}"
    return f"nftables table {nftrules.FAMILY} {name}"
