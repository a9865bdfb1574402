"""Many TCP and UDP flows through a NAT, and what source port each one arrived with.

`serve`: on the far side, a UDP and a TCP server that answer every datagram or connection
with the peer port they saw (after NAT). `flows`: on the LAN side, one flow per
(source address, source port, protocol), each from an explicitly bound port; prints
one JSON object per flow: {"proto", "src", "sport", "seen"} ("seen" is null when no
answer came). Run as `python -m tests.natflows serve|flows ...` inside a namespace.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading

#: how long a flow waits for its answer (each of UDP's three tries, TCP's connect)
TIMEOUT_S = float(os.environ.get("NATFLOWS_TIMEOUT", "3"))


def serve(address: str, udp_port: int, tcp_port: int) -> None:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((address, udp_port))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((address, tcp_port))
    tcp.listen(512)

    def answer_udp() -> None:
        while True:
            _, peer = udp.recvfrom(64)
            udp.sendto(str(peer[1]).encode(), peer)

    def answer_tcp() -> None:
        while True:
            conn, peer = tcp.accept()
            with conn:
                conn.sendall(str(peer[1]).encode())

    threading.Thread(target=answer_udp, daemon=True).start()
    threading.Thread(target=answer_tcp, daemon=True).start()
    print("serving", flush=True)
    sys.stdin.read()  # until the test closes our stdin


def _udp(src: str, sport: int, server: tuple[str, int]) -> int | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((src, sport))
        sock.settimeout(TIMEOUT_S)
        for _ in range(3):
            sock.sendto(b"x", server)
            try:
                return int(sock.recv(64))
            except TimeoutError:
                continue
    return None


def _tcp(src: str, sport: int, server: tuple[str, int]) -> int | None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((src, sport))
        sock.settimeout(TIMEOUT_S)
        try:
            sock.connect(server)
            return int(sock.recv(64))
        except (OSError, ValueError):
            return None


def flows(server: str, udp_port: int, tcp_port: int, sources: list[str], ports: list[int]) -> None:
    for proto, run, port in (("udp", _udp, udp_port), ("tcp", _tcp, tcp_port)):
        for src in sources:
            for sport in ports:
                seen = run(src, sport, (server, port))
                print(json.dumps({"proto": proto, "src": src, "sport": sport, "seen": seen}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        flows(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5].split(","),
              [int(p) for p in sys.argv[6].split(",")])
