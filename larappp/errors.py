"""Errors a user can hit: one clear sentence naming what to change, and an exit code."""

from __future__ import annotations


class LarapppError(Exception):
    """Base of every error larappp reports to a user; `exit_code` is the process status."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(LarapppError):
    """The configuration file is malformed or breaks a rule (of the app note or of larappp)."""

    exit_code = 2


class ValidationError(ConfigError):
    """An argument (APN, user name, password, port range...) cannot be sent to the module."""


class PortError(LarapppError):
    """The module's port cannot be opened, vanished, or is owned by someone else."""

    exit_code = 3


class PortClosed(PortError):
    """The port went away (EOF, EIO, hang-up) while it was in use."""


class ModemError(LarapppError):
    """The module answered a command with an error, or did something the spec does not allow."""

    exit_code = 4


class ModemTimeout(ModemError):
    """The module did not answer (or did not register, or did not come back) in time."""

    exit_code = 5


class PPPError(LarapppError):
    """The PPP link could not be opened, or ended for a reason given in the message."""

    exit_code = 6


class NetworkSetupError(LarapppError):
    """The host's interfaces, addresses, routes or DNS could not be configured."""

    exit_code = 7


class GaveUp(LarapppError):
    """A lost session was not brought back: `maxfail` redials failed in a row, or `persist` is off."""

    exit_code = 8
