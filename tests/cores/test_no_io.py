"""The rule of the cores: no I/O. One list of forbidden imports, every pure file checked.

The sans-IO cores (larappp/proto/), the module's knowledge (larappp/lara_r6/) and the
simulator's model of the module take bytes and time as arguments and hand back events
and bytes; the pumps in engine/, transport/ and the simulator's port servers do the I/O.
A new file in a pure package is pure by default; only the simulator's named I/O side
(its port servers, network, runner and command line) may import these modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "larappp"

#: Standard and third-party modules that do I/O, wait, or read the clock or the system.
FORBIDDEN = frozenset({
    "asyncio", "os", "socket", "termios", "time", "serial", "psutil", "pyroute2",
    "subprocess", "select", "selectors", "threading", "multiprocessing", "fcntl", "signal",
    "pty", "tty", "shutil", "tempfile", "pathlib", "io", "mmap", "ctypes", "logging",
})  # fmt: skip

PURE_PACKAGES = ("proto", "lara_r6", "sim")

#: The simulator's I/O side: port servers, operator network, DNS server, runner, CLI,
#: the fault control socket, and the module-side PPP pump (it logs).
SIM_IO_SIDE = frozenset({
    "__init__.py", "cli.py", "control.py", "dnsserver.py", "network.py", "ports.py", "ppp.py",
    "runner.py",
})  # fmt: skip

#: What a pure file may import from larappp itself: other pure code and the error types.
PURE_LARAPPP = ("larappp.proto", "larappp.lara_r6", "larappp.errors")


def pure_files() -> list[Path]:
    files = []
    for package in PURE_PACKAGES:
        for path in sorted((PACKAGE / package).rglob("*.py")):
            relative = path.relative_to(PACKAGE / package)
            if package == "sim" and len(relative.parts) == 1 and relative.name in SIM_IO_SIDE:
                continue
            files.append(path)
    return files


def imported_modules(path: Path) -> set[str]:
    """Absolute module names `path` imports, at any depth (inside functions too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_the_walk_finds_every_pure_package() -> None:
    files = pure_files()
    for package in PURE_PACKAGES:
        assert sum(1 for f in files if f.is_relative_to(PACKAGE / package)) >= 5, package
    assert PACKAGE / "proto" / "hdlc.py" in files and PACKAGE / "sim" / "module.py" in files
    assert PACKAGE / "sim" / "ports.py" not in files


@pytest.mark.parametrize("path", pure_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_pure_file_imports_no_io_module(path: Path) -> None:
    imported = imported_modules(path)
    bad = sorted(name for name in imported if name.split(".")[0] in FORBIDDEN)
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}: the cores do no I/O"
    allowed = PURE_LARAPPP + (("larappp.sim",) if path.is_relative_to(PACKAGE / "sim") else ())
    upward = sorted(
        name for name in imported
        if name.split(".")[0] == "larappp" and not name.startswith(allowed)
    )  # fmt: skip
    assert not upward, f"{path.relative_to(ROOT)} imports {upward}: pure code imports no pump"


def test_the_rule_catches_a_forbidden_import(tmp_path: Path) -> None:
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text("def later():\n    import time\n    from os import path\n")
    assert {name.split(".")[0] for name in imported_modules(sneaky)} == {"time", "os"}
