#!/usr/bin/env python3
"""Writes the seed inputs of fuzz_handshake into fuzz/corpus/handshake/.

An input is: byte 0 picks the listener (bits 0-1: 0 cluster 7, 1 cluster 7
with the secret "fuzz", 2 learning, 3 learning with the secret; bit 2: the
harness fixes frame CRCs), bytes 1-2 are where the delivery is split, and
the rest is what the dialer sends (frames of src/net/wire.h)."""
import os
import struct
import zlib

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "handshake")
HELLO, AUTH, REFUSE = 0x40, 0x41, 0x42


def frame(ftype, body):
    hdr = struct.pack("<IBBH", len(body), 1, ftype, 0)
    crc = zlib.crc32(hdr[4:8] + body) & 0xFFFFFFFF
    return hdr + struct.pack("<I", crc) + body


def hello(cluster, frm=2, to=1, flags=0, addr=b"127.0.0.1:7002"):
    body = struct.pack("<IHHQQQ", 0x504E524C, 2, flags, cluster, frm, to)
    body += bytes(range(32)) + bytes(32) + struct.pack("<H", len(addr)) + addr
    return frame(HELLO, body)


def vote(frm=2, to=1):
    # a raft message body: 9 u64 fields, flags, n_entries (wire.c)
    body = struct.pack("<QQQQQQQQQBI", frm, to, 3, 1, 2, 0, 0, 0, 0, 0, 0)
    return frame(4, body)


SEEDS = {
    "hello": (0, hello(7)),
    "hello_then_vote": (4, hello(7) + vote()),
    "hello_wrong_cluster": (0, hello(8)),
    "hello_no_cluster": (0, hello(0)),
    "hello_learn": (2, hello(9) + vote()),
    "hello_learn_bad": (2, hello(0x0BAD)),
    "hello_auth": (5, hello(7, flags=1) + frame(AUTH, bytes(32))),
    "hello_unknown_node": (0, hello(7, frm=5, addr=b"127.0.0.1:7005")),
    "hello_wrong_to": (0, hello(7, to=3)),
    "refuse": (0, frame(REFUSE, b"no")),
    "garbage": (0, b"GET / HTTP/1.1\r\n\r\n"),
    "split": (0, hello(7)),
}

os.makedirs(OUT, exist_ok=True)
for name, (mode, data) in SEEDS.items():
    a, b = (5, 20) if name == "split" else (len(data) & 0xFF, 0)
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(bytes([mode, a, b]) + data)
print(len(SEEDS), "seeds in", OUT)
