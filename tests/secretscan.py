"""Where a secret could show on the host: process command lines, environments, files."""

from __future__ import annotations

from pathlib import Path


def processes_showing(secrets: list[str]) -> list[str]:
    """Every process whose cmdline or environ holds one of `secrets`, as "pid file"."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        for name in ("cmdline", "environ"):
            try:
                data = (proc / name).read_bytes()
            except OSError:  # gone meanwhile, or a kernel thread
                continue
            if any(secret.encode() in data for secret in secrets):
                found.append(f"{proc.name} {name}")
    return found


def files_showing(secrets: list[str], folders: list[Path], skip: set[Path]) -> list[str]:
    """Every file under `folders` (but those in `skip`) holding one of `secrets`."""
    found = []
    for folder in folders:
        for path in sorted(folder.rglob("*")) if folder.exists() else []:
            if path.is_file() and path not in skip:
                text = path.read_bytes()
                found += [f"{path}: {secret!r}" for secret in secrets if secret.encode() in text]
    return found
