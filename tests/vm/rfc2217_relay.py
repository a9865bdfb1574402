"""An RFC 2217 server over a real serial device, run inside the VM (guest side of tier c).

The VM tier's bridged path: larappp in the guest reaches the simulator's port 1 (the
guest's ttyS2) as rfc2217://127.0.0.1:PORT, so pppd cannot open it and gets a pty
bridged by larappp, as with a module behind a remote serial server. pyserial's
PortManager does the telnet and RFC 2217 side over the guest's 8250 UART (which has
modem lines, unlike a pty). One client at a time; a new client ends the old one's
connection (larappp reopens its port on a redial). Standard library and pyserial only.

Usage: python3 rfc2217_relay.py DEVICE TCP_PORT
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading

import serial
import serial.rfc2217


class _Connection:
    """What PortManager writes to: the client's socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)


def _port_to_client(port: serial.Serial, conn: socket.socket, manager: serial.rfc2217.PortManager,
                    alive: threading.Event) -> None:
    while alive.is_set():
        try:
            data = port.read(port.in_waiting or 1)
            manager.check_modem_lines()
            if data:
                conn.sendall(data.replace(b"\xff", b"\xff\xff"))  # IAC doubled (PortManager.escape, fast)
        except (OSError, serial.SerialException):
            break
    alive.clear()


def _client_to_port(port: serial.Serial, conn: socket.socket) -> None:
    manager = serial.rfc2217.PortManager(port, _Connection(conn))
    alive = threading.Event()
    alive.set()
    reader = threading.Thread(target=_port_to_client, args=(port, conn, manager, alive), daemon=True)
    reader.start()
    try:
        while alive.is_set():
            data = conn.recv(65536)
            if not data:
                break
            if manager.mode == serial.rfc2217.M_NORMAL and b"\xff" not in data:
                port.write(data)  # no telnet command in it: PortManager.filter would pass it byte by byte
            else:
                port.write(b"".join(manager.filter(data)))
    except (OSError, serial.SerialException):
        pass
    finally:
        alive.clear()
        reader.join()
        conn.close()


def serve(device: str, tcp_port: int) -> None:
    port = serial.Serial()
    port.port = device
    port.baudrate = 115200
    port.timeout = 0.02
    port.write_timeout = 5
    port.open()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", tcp_port))
    listener.listen(4)
    print(f"rfc2217 relay: {device} on 127.0.0.1:{tcp_port}", flush=True)
    current: tuple[socket.socket, threading.Thread] | None = None
    while True:
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if current is not None:  # a new client (larappp reopened its port): the old one is done
            old, handler = current
            with contextlib.suppress(OSError):
                old.shutdown(socket.SHUT_RDWR)
            handler.join()
        handler = threading.Thread(target=_client_to_port, args=(port, conn), daemon=True)
        handler.start()
        current = (conn, handler)


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
