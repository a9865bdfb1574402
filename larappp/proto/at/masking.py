"""Masking of secrets (PIN, PPP/APN passwords) in traces, logs and error messages."""

from __future__ import annotations

from collections.abc import Iterable

MASK = "***"


def mask(text: str, secrets: Iterable[str]) -> str:
    """`text` with every occurrence of each non-empty secret replaced by "***"."""
    # Longest first, so a secret that contains another one is masked whole.
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
