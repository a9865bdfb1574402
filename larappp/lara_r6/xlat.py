"""When to switch LARA-R6's 464XLAT on or off (app note §2.5), without reboot loops.

On T-Mobile US an IPv6-only grant calls for XLAT; on a roaming network that grants
IPv4, XLAT must be off again. Each switch costs a module reboot (CFUN=0, UDCONF=66,
CFUN=16), so a history of past switches, persisted by the caller as JSON, stops the
decision from flapping: no switch undoes one made less than 10 minutes ago, and at
most 2 switches happen per hour.

Standard library only; no I/O. `now` is wall-clock seconds (the history outlives the
process and the host's reboots).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from larappp.errors import ConfigError
from larappp.lara_r6.commands import cfun, udconf66_set

__all__ = [
    "T_MOBILE_US_PLMNS",
    "XLAT_MAX_SWITCHES_PER_WINDOW",
    "XLAT_MIN_REVERSAL_INTERVAL_S",
    "XLAT_WINDOW_S",
    "XlatAction",
    "XlatDecision",
    "XlatHistory",
    "decide_xlat",
    "is_t_mobile_us",
    "xlat_switch_commands",
]

# T-Mobile US PLMNs (MCC 310) listed for T-Mobile by the public MCC/MNC tables; 310260
# is the one the network broadcasts. Pass `home_plmns` to decide_xlat() to extend it.
T_MOBILE_US_PLMNS = frozenset(
    {
        "310160",
        "310200",
        "310210",
        "310220",
        "310230",
        "310240",
        "310250",
        "310260",
        "310270",
        "310310",
        "310490",
        "310660",
        "310800",
    }
)

XLAT_MIN_REVERSAL_INTERVAL_S = 600.0  # larappp: never undo a switch younger than 10 min
XLAT_WINDOW_S = 3600.0  # larappp: the window the switch count is taken over
XLAT_MAX_SWITCHES_PER_WINDOW = 2  # larappp: at most 2 switches (2 reboots) per hour

XlatAction = Literal["enable", "disable", "none"]


def is_t_mobile_us(plmn: str, home_plmns: frozenset[str] = T_MOBILE_US_PLMNS) -> bool:
    return plmn.strip() in home_plmns


def xlat_switch_commands(enable: bool) -> list[str]:
    """The switch as data (app note §2.5): radio off, set XLAT, reboot; then re-initialise."""
    return [cfun(0), udconf66_set(enable), cfun(16)]


@dataclass(frozen=True)
class XlatHistory:
    """The XLAT switches larappp made recently, kept across restarts to prevent reboot loops."""

    last_action: Literal["enable", "disable"] | None = None
    #: Wall-clock times of the switches still inside XLAT_WINDOW_S, oldest first.
    switch_times: tuple[float, ...] = ()

    @property
    def last_time(self) -> float | None:
        return self.switch_times[-1] if self.switch_times else None

    def count_within(self, now: float, window: float = XLAT_WINDOW_S) -> int:
        """Switches made less than `window` seconds before `now` (or stamped in the future)."""
        return sum(1 for t in self.switch_times if now - window < t <= now + window)

    def record(self, action: Literal["enable", "disable"], now: float) -> XlatHistory:
        """This history plus a switch made at `now`, dropping entries past the window."""
        kept = tuple(t for t in self.switch_times if now - XLAT_WINDOW_S < t <= now + XLAT_WINDOW_S)
        return XlatHistory(last_action=action, switch_times=(*kept, now))

    def to_json(self) -> str:
        return json.dumps(
            {"last_action": self.last_action, "switch_times": list(self.switch_times)},
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> XlatHistory:
        """Read what to_json() wrote; raises ConfigError for anything else."""
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise ConfigError(_BAD_HISTORY)
        action = data.get("last_action")
        times = data.get("switch_times", [])
        if action not in (None, "enable", "disable") or not isinstance(times, list):
            raise ConfigError(_BAD_HISTORY)
        if not all(isinstance(t, int | float) and not isinstance(t, bool) for t in times):
            raise ConfigError(_BAD_HISTORY)
        return cls(last_action=action, switch_times=tuple(float(t) for t in sorted(times)))


_BAD_HISTORY = (
    "the saved XLAT switch history is not what larappp writes; delete the file so larappp "
    "starts a new one"
)


@dataclass(frozen=True)
class XlatDecision:
    """What to do about XLAT now, and why, in one sentence fit for the log."""

    action: XlatAction
    reason: str

    @property
    def commands(self) -> list[str]:
        """The AT sequence that carries out the decision (empty for "none")."""
        if self.action == "none":
            return []
        return xlat_switch_commands(self.action == "enable")


def decide_xlat(
    *,
    plmn: str,
    granted_pdp_type: str,
    xlat_enabled: bool,
    history: XlatHistory,
    now: float,
    home_plmns: frozenset[str] = T_MOBILE_US_PLMNS,
) -> XlatDecision:
    """Decide from the registered PLMN (AT+COPS=3,2) and the type AT+CGDCONT? shows."""
    plmn = plmn.strip()
    granted = granted_pdp_type.strip().upper()
    if not (plmn.isascii() and plmn.isdigit() and len(plmn) in (5, 6)):
        return XlatDecision(
            "none",
            f'operator "{plmn}" is not a numeric PLMN, so XLAT is left as it is; '
            "read it after AT+COPS=3,2",
        )
    on_t_mobile = is_t_mobile_us(plmn, home_plmns)

    wanted: Literal["enable", "disable"] | None = None
    if on_t_mobile and granted == "IPV6" and not xlat_enabled:
        wanted = "enable"
        why = f"T-Mobile US ({plmn}) granted IPv6 only, so IPv4 traffic needs XLAT (app note §2.5)"
    elif not on_t_mobile and xlat_enabled and granted in ("IP", "IPV4V6"):
        wanted = "disable"
        why = (
            f"roaming network {plmn} granted IPv4 ({granted}) while XLAT is on, and XLAT works "
            "only on T-Mobile US (app note §2.5)"
        )
    elif on_t_mobile and granted == "IPV6":
        why = f"XLAT is already on for the IPv6-only grant of T-Mobile US ({plmn})"
    elif on_t_mobile:
        why = f"T-Mobile US ({plmn}) granted {granted or 'no type'}, which needs no XLAT change"
    elif xlat_enabled:
        why = f"network {plmn} granted {granted or 'no type'}, no IPv4 yet to turn XLAT off for"
    else:
        why = f"network {plmn} is not T-Mobile US and XLAT is off, as it should be (app note §2.5)"
    if wanted is None:
        return XlatDecision("none", why)

    last = history.last_time
    if last is not None and history.last_action not in (None, wanted):
        age = now - last
        # A stamp up to a window ahead of `now` (the clock went back) still counts as recent;
        # one further ahead is stale, or the guard could block switching for months.
        if -XLAT_WINDOW_S < age < XLAT_MIN_REVERSAL_INTERVAL_S:
            return XlatDecision(
                "none",
                f"{why}, but XLAT was switched to {history.last_action} only "
                f"{max(age, 0.0):.0f} s ago and undoing it within "
                f"{XLAT_MIN_REVERSAL_INTERVAL_S:.0f} s could loop reboots; not switching yet",
            )
    switches = history.count_within(now)
    if switches >= XLAT_MAX_SWITCHES_PER_WINDOW:
        return XlatDecision(
            "none",
            f"{why}, but XLAT was already switched {switches} times in the last "
            f"{XLAT_WINDOW_S / 60:.0f} minutes, the most larappp allows; not switching, to "
            "avoid a reboot loop",
        )
    return XlatDecision(wanted, why)
