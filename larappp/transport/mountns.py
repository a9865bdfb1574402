"""Start a program with a private view of a few paths: bind mounts in its own mount namespace.

larappp gives pppd its own /etc/ppp this way: pppd 2.4.9 always reads /etc/ppp/options
(Debian's has `auth`, `crtscts`, `lock`, `modem`, `lcp-echo-interval 30`), runs
/etc/ppp/ip-pre-up and /etc/ppp/ipv6-up, and writes /etc/ppp/resolv.conf, none of which
a command-line option turns off (pppd(8), FILES). In a mount namespace of its own, with
larappp's runtime folder bound over /etc/ppp, pppd sees only larappp's files, and the
host's namespace is untouched (the mounts vanish with the process).

util-linux `unshare` and `mount` do the work (Python 3.11 has no os.unshare, and a
`preexec_fn` is not safe in a program with threads): `wrap()` turns an argv into one
that makes the mounts and then execs the program, whose pid stays the same.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Sequence

__all__ = ["BIND_FAILED", "available", "wrap"]

#: the wrapper's exit status when a bind mount failed (the program was not started)
BIND_FAILED = 97
_SEARCH_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Positional arguments: SOURCE TARGET ... -- PROGRAM ARGS; nothing is interpolated.
_SCRIPT = (
    f'while [ "$1" != -- ]; do mount --bind -- "$1" "$2" || exit {BIND_FAILED}; shift 2; done; '
    'shift; exec "$@"'
)

_checked: str | None = None
_reason: str | None = None


def _tools() -> tuple[str, str] | None:
    unshare = shutil.which("unshare", path=_SEARCH_PATH)
    mount = shutil.which("mount", path=_SEARCH_PATH)
    return (unshare, mount) if unshare and mount else None


async def available() -> str | None:
    """None when private mounts work here, else why not (checked once per process)."""
    global _checked, _reason
    if _checked is not None:
        return _reason
    tools = _tools()
    if tools is None:
        _reason = "util-linux unshare or mount is missing"
    else:
        process = await asyncio.create_subprocess_exec(
            tools[0], "--mount", "--propagation", "private", "--", "/bin/sh", "-c", "exit 0",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await process.communicate()
        if process.returncode != 0:
            text = err.decode(errors="replace").strip().splitlines()
            _reason = f"unshare --mount failed: {text[-1] if text else process.returncode} (no CAP_SYS_ADMIN?)"
    _checked = "yes"
    return _reason


def wrap(argv: Sequence[str], binds: Sequence[tuple[str, str]]) -> list[str]:
    """`argv` run in a new mount namespace where each (source, target) is bound over target."""
    tools = _tools()
    if tools is None:
        raise FileNotFoundError("util-linux unshare or mount is missing")
    pairs = [path for bind in binds for path in bind]
    return [
        tools[0], "--mount", "--propagation", "private", "--",
        "/bin/sh", "-c", _SCRIPT, "larappp-mounts", *pairs, "--", *argv,
    ]
