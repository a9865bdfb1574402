"""Uplink pacing on the host: the kernel's traffic control (tc) on a session's link
interface (TUN or pppN), through rtnetlink (pyroute2).

App note §4: the module drops what its radio cannot send, even with hardware flow
control, and nobody sees those drops. A token bucket (tbf) at the radio's uplink rate on
the link interface moves the queue to the host: TCP sees it (the qdisc's backlog slows
the socket, its drops are losses TCP repairs) and the counters say where packets went.
The queue is short (QUEUE_TIME at the paced rate) so it adds little latency; where the
kernel has fq_codel it runs inside the bucket so one flow cannot starve the others (this
kernel has none: tbf's own byte FIFO then holds the queue).

`UplinkShaper` records what it added and removes exactly that (as netlink.py does).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Any

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError

from larappp.errors import NetworkSetupError

#: how long a packet may wait in the host's uplink queue at the paced rate
QUEUE_TIME = 0.05
#: how much the bucket may send back to back: a few ms at the rate, and at least two packets
BURST_TIME = 0.004
#: the handle of the root qdisc larappp adds (tc's "1:")
ROOT_HANDLE = 0x10000
#: the handle of its fq_codel child ("10:")
CHILD_HANDLE = 0x100000
#: errors meaning the interface or the qdisc went away already
_GONE = frozenset({errno.ENODEV, errno.ENOENT, errno.EINVAL})


@dataclass(frozen=True)
class TokenBucket:
    """A tbf's settings for `kbit` kbit/s on an interface of MTU `mtu` (bytes)."""

    kbit: int
    burst: int
    limit: int

    @classmethod
    def for_rate(cls, kbit: int, mtu: int) -> TokenBucket:
        """A bucket of a few ms of burst and a queue of QUEUE_TIME at the rate, neither
        smaller than the packets it must hold."""
        bytes_per_second = kbit * 1000 / 8
        burst = max(2 * mtu, int(bytes_per_second * BURST_TIME))
        limit = max(burst + 2 * mtu, int(bytes_per_second * QUEUE_TIME))
        return cls(kbit, burst, limit)

    @property
    def queue_seconds(self) -> float:
        """The longest a packet waits in the queue at the paced rate."""
        return self.limit * 8 / (self.kbit * 1000)


def share_of(total_kbit: int, sessions: int) -> int:
    """Each session's pace when `sessions` share one radio of `total_kbit`.

    Each session is its own interface, so no qdisc sees them all: the rate is split in
    equal shares, fixed for the session's life. Their sum never exceeds the radio's
    uplink, so together they never overflow the module's buffer; an idle session's share
    goes unused (the price of that guarantee). 0 stays 0 (pacing off).
    """
    if total_kbit <= 0:
        return 0
    return max(8, total_kbit // max(1, sessions))


class UplinkShaper:
    """Paces what the host sends on one interface with a root tbf (and fq_codel inside it
    where the kernel has it); removes exactly what it added."""

    def __init__(self, ifname: str) -> None:
        self.ifname = ifname
        self.bucket: TokenBucket | None = None
        #: whether fq_codel runs inside the bucket (False: tbf's own FIFO)
        self.fair_queue = False
        self._ipr: Any = None

    async def _api(self) -> Any:
        if self._ipr is None:
            ipr = AsyncIPRoute()
            await ipr.setup_endpoint()
            self._ipr = ipr
        return self._ipr

    async def _index(self) -> int | None:
        ipr = await self._api()
        indexes = await ipr.link_lookup(ifname=self.ifname)
        return int(indexes[0]) if indexes else None

    async def apply(self, kbit: int, mtu: int) -> TokenBucket:
        """Pace the interface at `kbit` kbit/s; NetworkSetupError naming what to change."""
        bucket = TokenBucket.for_rate(kbit, mtu)
        index = await self._index()
        if index is None:
            raise NetworkSetupError(f"cannot pace {self.ifname}: the interface is gone")
        ipr = await self._api()
        # A second link-up (LCP renegotiated) changes our own bucket; the first never
        # replaces a root qdisc the administrator put there (the kernel refuses: EEXIST).
        command = "replace" if self.bucket is not None else "add"
        try:
            await ipr.tc(command, "tbf", index=index, handle=ROOT_HANDLE, rate=f"{kbit}kbit",
                         burst=bucket.burst, limit=bucket.limit)
        except NetlinkError as exc:
            raise NetworkSetupError(
                f"cannot pace {self.ifname} at {kbit} kbit/s with tc tbf ({exc}): the kernel needs "
                "sch_tbf, or set modem.uplink_kbit = 0 to turn pacing off"
            ) from None
        if self.bucket is not None:
            self.bucket = bucket
            return bucket
        self.bucket = bucket
        try:
            await ipr.tc("add", "fq_codel", index=index, parent=ROOT_HANDLE, handle=CHILD_HANDLE)
            self.fair_queue = True
        except NetlinkError:
            self.fair_queue = False  # no sch_fq_codel: tbf's byte FIFO is the queue
        return bucket

    async def counters(self) -> dict[str, int]:
        """What the host's uplink queue sent, dropped and holds now (the kernel's counters
        of the qdiscs larappp added); empty when pacing is off."""
        if self.bucket is None:
            return {}
        index = await self._index()
        if index is None:
            return {}
        ipr = await self._api()
        total = {"sent_packets": 0, "sent_bytes": 0, "dropped": 0, "overlimits": 0, "backlog": 0}
        try:
            qdiscs = await _listed(ipr.get_qdiscs(index=index))
        except NetlinkError as exc:
            raise NetworkSetupError(f"reading the qdiscs of {self.ifname} failed: {exc}") from None
        for message in qdiscs:
            if message.get("handle") != ROOT_HANDLE and message.get("parent") != ROOT_HANDLE:
                continue
            stats = message.get_attr("TCA_STATS") or {}
            if message.get("handle") == ROOT_HANDLE:
                total["sent_packets"] = stats.get("packets", 0)
                total["sent_bytes"] = stats.get("bytes", 0)
                total["overlimits"] = stats.get("overlimits", 0)
            # a child's drops are the queue's too (fq_codel drops inside the bucket)
            total["dropped"] += stats.get("drop", 0)
            total["backlog"] += stats.get("backlog", 0)
        return total

    async def remove(self) -> list[str]:
        """Delete the root qdisc larappp added (its children go with it); what failed."""
        failures: list[str] = []
        if self.bucket is not None:
            self.bucket = None
            try:
                index = await self._index()
                if index is not None:
                    ipr = await self._api()
                    await ipr.tc("del", index=index, handle=ROOT_HANDLE, root=True)
            except NetlinkError as exc:
                if exc.code not in _GONE:
                    failures.append(f"removing the uplink pacing of {self.ifname}: {exc}")
        if self._ipr is not None:
            ipr, self._ipr = self._ipr, None
            ipr.close()
        return failures


async def _listed(result: Any) -> list[Any]:
    """pyroute2 answers dumps with a list or an async iterator, depending on the call."""
    result = await result
    if isinstance(result, list):
        return result
    return [item async for item in result]
