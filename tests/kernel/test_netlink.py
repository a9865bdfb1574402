"""larappp.transport.netlink in a throw-away namespace: configure, verify with iproute2, undo."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Callable
from ipaddress import IPv6Address
from pathlib import Path
from typing import Any, TypeVar

import pytest

from larappp.errors import NetworkSetupError
from larappp.transport.netlink import LedgerEntry, Netlink
from larappp.transport.tun import Tun
from tests.nshelp import in_netns, ip_json

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces and TUN"),
    pytest.mark.skipif(not os.path.exists("/dev/net/tun"), reason="no /dev/net/tun"),
]

T = TypeVar("T")
HOST_IID = bytes.fromhex("90a15cfc3cc97301")
HOST_LL = "fe80::90a1:5cfc:3cc9:7301"
GLOBAL = "2a0b:ad40:1:102a:90a1:5cfc:3cc9:7301"
ROUTER_LL = "fe80::2a0b:ad40:1:102a"


def addr_set(namespace: str, ifname: str) -> set[tuple[str, str | None, int]]:
    found = set()
    for link in ip_json(namespace, "addr", "show", "dev", ifname):
        for info in link["addr_info"]:
            found.add((info["local"], info.get("address"), info["prefixlen"]))
    return found


def routes(namespace: str, family: str) -> list[dict[str, Any]]:
    return list(ip_json(namespace, family, "route", "show"))


def in_tun_namespace(
    namespace: str,
    ifname: str,
    scenario: Callable[[Tun], Any],
    prepare: Callable[[Tun], None] = lambda tun: None,
) -> Any:
    """Open a TUN in the namespace, run `prepare(tun)` then the coroutine `scenario(tun)`."""

    def run() -> Any:
        with Tun.open(ifname) as tun:
            prepare(tun)
            return asyncio.run(scenario(tun))

    return in_netns(namespace, run)


def test_ppp_style_configuration_and_exact_undo(netns: str) -> None:
    async def scenario(tun: Tun) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with Netlink() as nl:
            await nl.set_mtu(tun.name, 1430)
            await nl.set_link_up(tun.name)
            assert await nl.add_ipv4_peer(tun.name, "10.20.30.40", "10.64.64.64")
            assert await nl.add_ipv6_link_local(tun.name, HOST_IID)
            assert await nl.add_ipv6_global(tun.name, GLOBAL, valid_lft=3600, preferred_lft=1800)
            assert await nl.add_default_route(tun.name, 4, metric=100)
            assert await nl.add_default_route(tun.name, 6, gateway=ROUTER_LL, metric=100, mtu=1400)
            assert await nl.add_route(tun.name, "192.0.2.0/24", metric=5)
            seen["addresses"] = addr_set(netns, tun.name)
            seen["v4"] = routes(netns, "-4")
            seen["v6"] = routes(netns, "-6")
            seen["link"] = ip_json(netns, "link", "show", tun.name)[0]
            seen["ours"] = await nl.addresses(tun.name)
            seen["our_routes"] = await nl.routes(6, tun.name)
            seen["ledger"] = [entry.describe() for entry in nl.ledger.entries]
            seen["failures"] = await nl.ledger.undo()
            seen["after_addresses"] = addr_set(netns, tun.name)
            seen["after_v4"] = routes(netns, "-4")
            seen["after_v6"] = routes(netns, "-6")
            seen["after_link"] = ip_json(netns, "link", "show", tun.name)[0]
            seen["left"] = list(nl.ledger.entries)
        return seen

    def no_kernel_link_local(tun: Tun) -> None:
        Path(f"/proc/sys/net/ipv6/conf/{tun.name}/addr_gen_mode").write_text("1")

    seen = in_tun_namespace(netns, "ppp0", scenario, no_kernel_link_local)
    assert seen["addresses"] == {
        ("10.20.30.40", "10.64.64.64", 32),  # `local peer` form, like pppd
        (HOST_LL, None, 64),
        (GLOBAL, None, 64),
    }
    (v4_default,) = [r for r in seen["v4"] if r["dst"] == "default"]
    assert v4_default["dev"] == "ppp0" and v4_default["metric"] == 100
    assert "gateway" not in v4_default and v4_default["protocol"] == "static"
    assert any(r["dst"] == "192.0.2.0/24" and r["metric"] == 5 for r in seen["v4"])
    (v6_default,) = [r for r in seen["v6"] if r["dst"] == "default"]
    assert v6_default["gateway"] == ROUTER_LL and v6_default["metric"] == 100
    assert any(m.get("mtu") == 1400 for m in v6_default["metrics"])
    assert seen["link"]["mtu"] == 1430 and "UP" in seen["link"]["flags"]
    by_ip = {str(a.interface.ip): a for a in seen["ours"]}
    assert str(by_ip["10.20.30.40"].peer) == "10.64.64.64"
    assert by_ip[GLOBAL].valid_lft is not None and by_ip[GLOBAL].valid_lft <= 3600
    assert by_ip[HOST_LL].valid_lft is None and by_ip[HOST_LL].scope == 253
    (our_default,) = [r for r in seen["our_routes"] if r.destination.prefixlen == 0]
    assert our_default.gateway == IPv6Address(ROUTER_LL) and our_default.mtu == 1400
    assert seen["ledger"] == [
        "MTU of ppp0 (was 1500)",
        "link ppp0 up",
        "address 10.20.30.40/32 peer 10.64.64.64 on ppp0",
        f"address {HOST_LL}/64 on ppp0",
        f"address {GLOBAL}/64 on ppp0",
        "route 0.0.0.0/0 dev ppp0 metric 100",
        f"route ::/0 via {ROUTER_LL} dev ppp0 metric 100",
        "route 192.0.2.0/24 dev ppp0 metric 5",
    ]
    # undo removed exactly that
    assert seen["failures"] == [] and seen["left"] == []
    assert seen["after_addresses"] == set()
    assert seen["after_v4"] == [] and seen["after_v6"] == []
    assert seen["after_link"]["mtu"] == 1500 and "UP" not in seen["after_link"]["flags"]


def test_undo_of_one_family_leaves_the_other_and_the_link(netns: str) -> None:
    async def scenario(tun: Tun) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with Netlink() as nl:
            await nl.set_link_up(tun.name)
            assert await nl.add_ipv4_peer(tun.name, "10.20.30.40", "10.64.64.64")
            assert await nl.add_default_route(tun.name, 4, metric=100)
            assert await nl.add_ipv6_link_local(tun.name, HOST_IID)
            assert await nl.add_ipv6_global(tun.name, GLOBAL, valid_lft=3600, preferred_lft=1800)
            assert await nl.add_default_route(tun.name, 6, gateway=ROUTER_LL, metric=100)
            seen["failures"] = await nl.ledger.undo(6)  # IPV6CP closed, IPCP and the link stay
            seen["addresses"] = addr_set(netns, tun.name)
            seen["v4"] = [r["dst"] for r in routes(netns, "-4")]
            seen["v6"] = [r["dst"] for r in routes(netns, "-6")]
            seen["left"] = [entry.describe() for entry in nl.ledger.entries]
            await nl.ledger.undo()
        return seen

    def no_kernel_link_local(tun: Tun) -> None:
        Path(f"/proc/sys/net/ipv6/conf/{tun.name}/addr_gen_mode").write_text("1")

    seen = in_tun_namespace(netns, "ppp0", scenario, no_kernel_link_local)
    assert seen["failures"] == []
    assert seen["addresses"] == {("10.20.30.40", "10.64.64.64", 32)}
    assert "default" in seen["v4"] and seen["v6"] == []
    assert seen["left"] == [
        "link ppp0 up",
        "address 10.20.30.40/32 peer 10.64.64.64 on ppp0",
        "route 0.0.0.0/0 dev ppp0 metric 100",
    ]


def test_what_was_there_before_is_not_claimed_and_survives_undo(netns: str) -> None:
    def administrator_was_here(tun: Tun) -> None:
        subprocess.run(
            ["ip", "-n", netns, "addr", "add", "10.9.9.9/32", "dev", tun.name], check=True
        )
        subprocess.run(["ip", "-n", netns, "link", "set", tun.name, "up"], check=True)

    async def scenario(tun: Tun) -> dict[str, Any]:
        async with Netlink() as nl:
            await nl.set_link_up(tun.name)  # already up: nothing to undo
            added_again = await nl.add_address(tun.name, "10.9.9.9/32")
            added_new = await nl.add_address(tun.name, "10.9.9.10/32")
            route_again = await nl.add_route(tun.name, "198.51.100.0/24")
            route_twice = await nl.add_route(tun.name, "198.51.100.0/24")
            entries = [entry.kind for entry in nl.ledger.entries]
            await nl.ledger.undo()
        return {
            "added_again": added_again,
            "added_new": added_new,
            "route": (route_again, route_twice),
            "entries": entries,
            "left": addr_set(netns, tun.name),
            "link": ip_json(netns, "link", "show", tun.name)[0],
        }

    seen = in_tun_namespace(netns, "ppp3", scenario, administrator_was_here)
    assert seen["added_again"] is False and seen["added_new"] is True
    assert seen["route"] == (True, False)
    assert seen["entries"] == ["address", "route"]
    assert {a for a in seen["left"] if ":" not in a[0]} == {("10.9.9.9", None, 32)}
    assert "UP" in seen["link"]["flags"]


def test_delete_and_lifetime_update_keep_the_ledger_right(netns: str) -> None:
    async def scenario(tun: Tun) -> dict[str, Any]:
        async with Netlink() as nl:
            await nl.set_link_up(tun.name)
            await nl.add_ipv6_global(tun.name, GLOBAL, valid_lft=600, preferred_lft=600)
            await nl.update_address_lifetimes(tun.name, f"{GLOBAL}/64", 300, 0)  # deprecate
            info = ip_json(netns, "-6", "addr", "show", "dev", tun.name)[0]["addr_info"]
            await nl.add_default_route(tun.name, 6, gateway=ROUTER_LL)
            await nl.del_route(tun.name, "::/0", gateway=ROUTER_LL)
            await nl.del_route(tun.name, "::/0", gateway=ROUTER_LL)  # absent: not an error
            await nl.del_address(tun.name, f"{GLOBAL}/64")
            await nl.del_address(tun.name, f"{GLOBAL}/64")
            kinds = [entry.kind for entry in nl.ledger.entries]
        return {"info": info, "kinds": kinds, "left": addr_set(netns, tun.name)}

    seen = in_tun_namespace(netns, "ppp4", scenario)
    (global_info,) = [i for i in seen["info"] if i["local"] == GLOBAL]
    assert global_info.get("deprecated") is True and global_info["valid_life_time"] <= 300
    assert seen["kinds"] == ["link_up"]
    assert all(local != GLOBAL for local, _, _ in seen["left"])


def test_undo_after_the_tun_closed_is_quiet(netns: str) -> None:
    async def configure(nl: Netlink, tun: Tun) -> None:
        await nl.set_link_up(tun.name)
        await nl.add_ipv4_peer(tun.name, "10.1.1.1", "10.1.1.2")
        await nl.add_default_route(tun.name, 4)

    async def scenario() -> tuple[list[str], list[LedgerEntry], list[dict[str, Any]]]:
        async with Netlink() as nl:
            with Tun.open("ppp5") as tun:
                await configure(nl, tun)
            # the kernel removed the interface with its addresses and routes
            failures = await nl.ledger.undo()
            return failures, list(nl.ledger.entries), routes(netns, "-4")

    failures, left, remaining = in_netns(netns, lambda: asyncio.run(scenario()))
    assert failures == [] and left == [] and remaining == []


def test_ledger_saved_as_data_is_undone_by_a_new_process_view(netns: str) -> None:
    async def scenario(tun: Tun) -> tuple[set[Any], set[Any]]:
        async with Netlink() as first:
            await first.add_address(tun.name, "10.5.5.5/24")
            saved = json.loads(json.dumps(first.ledger.as_dicts()))
        before = addr_set(netns, tun.name)
        async with Netlink() as second:
            second.ledger.load_dicts(saved)
            assert await second.ledger.undo() == []
        return before, addr_set(netns, tun.name)

    before, after = in_tun_namespace(netns, "ppp6", scenario)
    assert ("10.5.5.5", None, 24) in before and after == set()


def test_named_namespace_from_the_main_thread(netns: str) -> None:
    subprocess.run(
        ["ip", "-n", netns, "link", "add", "v0", "type", "veth", "peer", "name", "v1"],
        check=True,
    )

    async def scenario() -> dict[str, Any]:
        async with Netlink(netns=netns) as nl:
            await nl.set_link_up("v0")
            await nl.add_address("v0", "192.0.2.1/24")
            link = await nl.link("v0")
            missing = await nl.link("nope0")
            during = addr_set(netns, "v0")
            await nl.ledger.undo()
            return {"link": link, "missing": missing, "during": during}

    seen = asyncio.run(scenario())
    assert seen["link"].up and seen["missing"] is None
    assert ("192.0.2.1", None, 24) in seen["during"]
    assert not [a for a in addr_set(netns, "v0") if a[0] == "192.0.2.1"]
    assert "v0" not in {
        x["ifname"]
        for x in json.loads(
            subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, check=True).stdout
        )
    }


def test_missing_namespace_and_interface_are_clear_errors(netns: str) -> None:
    async def scenario() -> None:
        nl = Netlink(netns=f"{netns}-absent")
        try:
            await nl.open()
        finally:
            nl.close()

    with pytest.raises(NetworkSetupError):
        asyncio.run(scenario())
    assert not os.path.exists(f"/run/netns/{netns}-absent")  # never created by accident

    async def no_interface() -> None:
        async with Netlink(netns=netns) as nl:
            await nl.add_address("ppp99", "10.0.0.1/32")

    with pytest.raises(NetworkSetupError, match="there is no interface ppp99"):
        asyncio.run(no_interface())


def test_wait_for_address_and_link(netns: str) -> None:
    async def scenario(tun: Tun) -> dict[str, Any]:
        async with Netlink() as nl:
            await nl.set_link_up(tun.name)
            with pytest.raises(NetworkSetupError, match="no global IPv4 address within 0.2 s"):
                await nl.wait_for_address(tun.name, 4, timeout=0.2)
            with pytest.raises(NetworkSetupError, match="nope1 was not present"):
                await nl.wait_for_link("nope1", timeout=0.2)

            async def add_later() -> None:
                await asyncio.sleep(0.2)
                await nl.add_ipv4_peer(tun.name, "10.3.3.3", "10.3.3.4")

            adder = asyncio.ensure_future(add_later())
            found = await nl.wait_for_address(tun.name, 4, timeout=5)
            await adder
            link = await nl.wait_for_link(tun.name, timeout=1, up=True)
            return {"found": found, "link": link}

    seen = in_tun_namespace(netns, "ppp7", scenario)
    assert str(seen["found"].interface.ip) == "10.3.3.3" and str(seen["found"].peer) == "10.3.3.4"
    assert seen["link"].ifname == "ppp7" and seen["link"].up
