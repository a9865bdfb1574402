"""The only code that touches serial ports, ptys, sockets to RFC 2217 servers and the kernel."""

from larappp.transport.factory import open_pipe, wait_for_port
from larappp.transport.pipe import ModemLines, Pipe

__all__ = ["ModemLines", "Pipe", "open_pipe", "wait_for_port"]
