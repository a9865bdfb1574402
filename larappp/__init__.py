"""larappp: PPP dial-up and network stack for u-blox LARA-R6 modules on Linux."""

__version__ = "0.1.0"
