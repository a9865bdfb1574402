"""netns helpers: temporary namespaces, code and commands inside them, veth pairs."""

from __future__ import annotations

import os
import socket

import pytest
from pyroute2 import netns

from larappp.errors import NetworkSetupError
from larappp.transport.netns import (
    call_in_netns,
    create_netns,
    delete_netns,
    run_in_netns,
    temp_netns,
    veth_pair,
)


def own_netns_inode() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


def test_temp_netns_is_deleted_even_when_the_body_fails() -> None:
    with pytest.raises(RuntimeError, match="boom"), temp_netns("lxnt-") as name:
        assert name in netns.listnetns()
        assert name.startswith(f"lxnt-{os.getpid()}-")
        raise RuntimeError("boom")
    assert name not in netns.listnetns()


def test_call_in_netns_runs_inside_and_leaves_this_thread_alone() -> None:
    home = own_netns_inode()
    with temp_netns("lxnt-") as name:
        inside = call_in_netns(name, own_netns_inode)
        assert inside == os.stat(f"/var/run/netns/{name}").st_ino != home
        assert own_netns_inode() == home
        links = call_in_netns(name, socket.if_nameindex)
        assert [ifname for _, ifname in links] == ["lo"]
        with pytest.raises(ZeroDivisionError):
            call_in_netns(name, lambda: 1 // 0)
        listed = run_in_netns(
            name, ["ip", "-o", "link"], capture_output=True, text=True, check=True
        )
        assert "lo:" in listed.stdout and "UP" in listed.stdout  # lo is brought up


def test_errors_name_the_namespace() -> None:
    with temp_netns("lxnt-") as name, pytest.raises(NetworkSetupError, match="exists already"):
        create_netns(name)
    with pytest.raises(NetworkSetupError, match=f"{name} does not exist"):
        call_in_netns(name, own_netns_inode)
    delete_netns(name)  # already gone: fine


def test_veth_pair_carries_udp_between_two_namespaces() -> None:
    with temp_netns("lxnt-") as host, temp_netns("lxnt-") as peer:
        veth_pair(
            host,
            peer,
            addrs_a=["10.77.0.1/24", "fd77::1/64"],
            addrs_b=["10.77.0.2/24", "fd77::2/64"],
        )
        for family, here, there in (
            (socket.AF_INET, "10.77.0.1", "10.77.0.2"),
            (socket.AF_INET6, "fd77::1", "fd77::2"),
        ):
            receiver = call_in_netns(peer, socket.socket, family, socket.SOCK_DGRAM)
            sender = call_in_netns(host, socket.socket, family, socket.SOCK_DGRAM)
            with receiver, sender:
                receiver.bind((there, 0))
                receiver.settimeout(5)
                sender.bind((here, 0))
                sender.sendto(b"hello", (there, receiver.getsockname()[1]))
                data, source = receiver.recvfrom(100)
                assert (data, source[0]) == (b"hello", here)
