#!/usr/bin/env python3
"""Writes the seed inputs of fuzz_snapshot into fuzz/corpus/snapshot/: state
machine snapshot blobs in the format of src/sm/sm_snapshot.c (all fields
little-endian):
  "LRSN" | u8 version 1 | u64 applied index | u64 applied term |
  u32 sessions | per session: u16 client_len, client, u64 seq,
      u64 last_index, u8 status, u32 result_len, result |
  u32 origins | per origin: u64 origin, u64 last, u64 window |
  u32 data_len | data (the script's snapshot() string)"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "snapshot")


def session(client, seq, last, status, result):
    return (struct.pack("<H", len(client)) + client + struct.pack("<QQBI", seq, last, status, len(result))
            + result)


def blob(index, term, sessions=(), origins=(), data=b"", version=1):
    b = b"LRSN" + struct.pack("<BQQI", version, index, term, len(sessions))
    b += b"".join(sessions)
    b += struct.pack("<I", len(origins)) + b"".join(struct.pack("<QQQ", *o) for o in origins)
    return b + struct.pack("<I", len(data)) + data


# an lr_encode'd result (the integer 5: fixint tag 0x80 + 5) and an error message
OK = b"\x85"
A = session(b"alice", 2, 3, 0, OK)
B = session(b"bob", 1, 2, 1, b"state.lua:3: boom")

SEEDS = {
    "empty": blob(0, 0),
    "state": blob(12, 3, data=b"abc"),
    "sessions": blob(4, 1, [A, B], [(1, 3, 1), (2, 2, 1)], b"abcd"),
    "too_large": blob(7, 2, [session(b"big", 1, 7, 6, b"over max_result_bytes")], [(1, 7, 0x3f)],
                      b"x"),
    "restore_raises": blob(3, 1, data=b"!refuse"),
    "duplicate_session": blob(4, 1, [A, A], [], b""),
    "duplicate_origin": blob(4, 1, [], [(1, 3, 0), (1, 4, 0)], b""),
    "bad_status": blob(4, 1, [session(b"c", 1, 1, 9, b"")], [], b""),
    "trailing": blob(2, 1, data=b"d") + b"\x00",
    "version2": blob(2, 1, data=b"d", version=2),
}

os.makedirs(OUT, exist_ok=True)
for name, data in SEEDS.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
print(len(SEEDS), "seeds in", OUT)
