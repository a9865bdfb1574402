"""Fixtures of the VM tier: the real pppd in a QEMU VM (see tests/vm/qemu.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.vm.qemu import PppdVm, VmArtifacts, build_artifacts, skip_reason

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test in tests/vm with `root` (tests/conftest.py marks it `vm`, its tier)."""
    for item in items:
        if _HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.root)


@pytest.fixture(scope="session")
def vm_artifacts() -> VmArtifacts:
    """The kernel and initramfs (built once per session; skips only where QEMU cannot run)."""
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    return build_artifacts()


@pytest.fixture
def pppd_vm(vm_artifacts: VmArtifacts) -> Iterator[Callable[..., PppdVm]]:
    """A factory that boots a `PppdVm(guest_script, **kwargs)`; every VM is stopped at teardown."""
    started: list[PppdVm] = []

    def boot(guest_script: str, **kwargs: Any) -> PppdVm:
        vm = PppdVm(guest_script, artifacts=vm_artifacts, **kwargs)
        started.append(vm)
        return vm.start()

    yield boot
    for vm in started:
        vm.stop()
