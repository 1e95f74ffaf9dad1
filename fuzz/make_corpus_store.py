#!/usr/bin/env python3
"""Writes the seed inputs of fuzz_store into fuzz/corpus/store/ (the record
format is described at the top of fuzz/fuzz_store.c)."""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "store")


def entry(idx, term, typ, data, crc=None):
    rec = struct.pack("<BHBBB", 0 | (4 if crc is None else 0), idx, term, typ, len(data)) + data
    return rec if crc is None else rec + struct.pack("<I", crc)


def snapshot(idx, term, cidx, voters, data):
    # tag 1|4|8: a valid configuration of `voters` voters, computed checksum
    return struct.pack("<BHBHB", 1 | 4 | 8, idx, term, cidx, voters) + struct.pack("<B", len(data)) + data


def meta(term, vote):
    return struct.pack("<BBB", 2, term, vote)


SEEDS = {
    "log": entry(1, 1, 2, b"boot") + entry(2, 1, 1, b"") + entry(3, 2, 0, b"cmd") + meta(2, 1),
    "gap": entry(1, 1, 0, b"a") + entry(3, 1, 0, b"c"),
    "bad_crc": entry(1, 1, 0, b"a", crc=12345),
    "snapshot": snapshot(10, 2, 1, 3, b"state") + entry(11, 2, 0, b"x") + entry(12, 3, 0, b"y"),
    "snapshot_only": snapshot(5, 1, 1, 1, b""),
    "snapshot_behind_log": entry(1, 1, 0, b"a") + entry(2, 1, 0, b"b") + snapshot(1, 1, 1, 2, b"s"),
    "terms_down": entry(1, 3, 0, b"a") + entry(2, 1, 0, b"b"),
    "meta_only": meta(9, 3),
}

os.makedirs(OUT, exist_ok=True)
for name, data in SEEDS.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
print(len(SEEDS), "seeds in", OUT)
