#!/usr/bin/env python3
"""The probe agent of bench/overlay.py, run inside one container's namespace (`ip netns exec C`,
so glibc reads the container's resolv.conf, as an application in it would).

For every NAME: resolve it (getaddrinfo, IPv4) and send one ICMP echo to the first address; again
every INTERVAL seconds until an echo reply from that address comes back. Prints `ready` once its
socket is open, then `ok NAME ADDRESS T` at each name's first reply, T = CLOCK_MONOTONIC at the
reply (the same clock in every namespace: the bench subtracts its own start), `timeout NAME` for
each name left after --timeout. One raw socket and one loop for all names: the probe's own cost
stays a few resolver queries and echoes per INTERVAL, small beside what it measures.
Usage: overlay_agent.py [--interval S] [--timeout S] NAME...
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import struct
import time


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo_request(ident: int, seq: int) -> bytes:
    payload = b"compose-net overlay bench"
    header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    return struct.pack("!BBHHH", 8, 0, checksum(header + payload), ident, seq) + payload


def resolve(name: str) -> str | None:
    try:
        return socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_DGRAM)[0][4][0]
    except (socket.gaierror, UnicodeError):
        return None  # not known yet (NXDOMAIN, or SERVFAIL from an unreachable upstream)


def replies(sock: socket.socket, ident: int, until: float) -> list[tuple[str, float]]:
    """Sources of echo replies to this agent that arrive before `until`."""
    got = []
    while (left := until - time.monotonic()) > 0:
        if not select.select([sock], [], [], left)[0]:
            break
        while True:
            try:
                data, (src, _) = sock.recvfrom(2048)
            except BlockingIOError:
                break
            now = time.monotonic()
            ihl = (data[0] & 0x0F) * 4
            kind, _, _, rid, _ = struct.unpack("!BBHHH", data[ihl:ihl + 8])
            if kind == 0 and rid == ident:
                got.append((src, now))
    return got


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("names", nargs="+")
    args = parser.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sock.setblocking(False)
    ident, seq = os.getpid() & 0xFFFF, 0
    pending: dict[str, str | None] = dict.fromkeys(args.names)
    print("ready", flush=True)
    deadline = time.monotonic() + args.timeout
    while pending and time.monotonic() < deadline:
        round_end = time.monotonic() + args.interval
        for name, address in list(pending.items()):
            address = address or resolve(name)
            if address is None:
                continue
            pending[name] = address
            seq = (seq + 1) & 0xFFFF
            try:
                sock.sendto(echo_request(ident, seq), (address, 0))
            except OSError:
                pass  # no route or neighbour yet: the next round sends again
        for src, at in replies(sock, ident, round_end):
            for name, address in list(pending.items()):
                if address == src:
                    print(f"ok {name} {address} {at:.6f}", flush=True)
                    del pending[name]
    for name in pending:
        print(f"timeout {name}", flush=True)


if __name__ == "__main__":
    main()
