"""Read a prepcache candidate cache from Python (numpy + zstandard only).

    from lunacache import LunaCache
    cache = LunaCache("cache/demo")
    len(cache)            # candidates, in the book's canonical order
    cache.chunk(0)        # numpy int16 array, shape (32, 48, 48), (i, r, c)
    cache.meta(0)         # dict(series_uid, center_xyz, center_irc, is_nodule, diameter_mm)

The layout is documented in shared/src/cache/format.rs; this reader supports
format version 1 and refuses others, like the Rust reader.

Run as a script, it prints the cache's size and checks every chunk:
    python scripts/lunacache.py CACHE
"""

import json
import mmap
import os
import struct
import sys
import zlib

import numpy as np
import zstandard

FORMAT_VERSION = 1
INDEX_MAGIC = b"LUNACIDX"
ENTRY_DTYPE = np.dtype(
    [
        ("series", "<u4"),
        ("center_xyz", "<f8", (3,)),
        ("center_irc", "<i4", (3,)),
        ("is_nodule", "u1"),
        ("diameter_mm", "<f8"),
        ("shard", "<u4"),
        ("offset", "<u8"),
        ("length", "<u4"),
        ("crc32", "<u4"),
    ]
)
assert ENTRY_DTYPE.itemsize == 69


class CacheError(Exception):
    pass


class LunaCache:
    def __init__(self, path):
        self.path = os.fspath(path)
        manifest_path = os.path.join(self.path, "manifest.json")
        if not os.path.exists(manifest_path):
            raise CacheError(f"{self.path}: incomplete cache: no manifest.json (rerun `prepcache build`)")
        with open(manifest_path) as f:
            self.manifest = json.load(f)
        if self.manifest.get("format_version") != FORMAT_VERSION:
            raise CacheError(
                f"{manifest_path}: cache format version {self.manifest.get('format_version')}, "
                f"this reader reads version {FORMAT_VERSION}"
            )
        self.shape = tuple(self.manifest["crop_shape"])
        self.voxels = int(np.prod(self.shape))
        self.shuffled = self.manifest["codec"]["filter"] == "byte_shuffle"
        self._parse_index(os.path.join(self.path, "index.bin"))
        self._maps = []
        for rel, size in self.shards:
            with open(os.path.join(self.path, *rel.split("/")), "rb") as f:
                if os.fstat(f.fileno()).st_size != size:
                    raise CacheError(f"{rel}: size differs from the index")
                self._maps.append(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b"")
        self._dctx = zstandard.ZstdDecompressor()

    def _parse_index(self, path):
        with open(path, "rb") as f:
            data = f.read()
        if data[:8] != INDEX_MAGIC:
            raise CacheError(f"{path}: not a cache index")
        (version,) = struct.unpack_from("<I", data, 8)
        if version != FORMAT_VERSION:
            raise CacheError(f"{path}: index version {version}, this reader reads {FORMAT_VERSION}")
        pos = 12

        def u64():
            nonlocal pos
            (v,) = struct.unpack_from("<Q", data, pos)
            pos += 8
            return v

        def string():
            nonlocal pos
            n = u64()
            s = data[pos : pos + n].decode("utf-8")
            pos += n
            return s

        self.series_uids = [string() for _ in range(u64())]
        self.shards = [(string(), u64()) for _ in range(u64())]
        count = u64()
        self.entries = np.frombuffer(data, dtype=ENTRY_DTYPE, count=count, offset=pos)
        if pos + count * ENTRY_DTYPE.itemsize != len(data):
            raise CacheError(f"{path}: unexpected length")

    def __len__(self):
        return len(self.entries)

    def stored_bytes(self, i):
        e = self.entries[i]
        start = int(e["offset"])
        return self._maps[int(e["shard"])][start : start + int(e["length"])]

    def chunk(self, i):
        e = self.entries[i]
        frame = self.stored_bytes(i)
        if zlib.crc32(frame) != int(e["crc32"]):
            raise CacheError(f"candidate {i} ({self.series_uids[int(e['series'])]}): CRC32 mismatch")
        raw = self._dctx.decompress(frame, max_output_size=2 * self.voxels)
        if len(raw) != 2 * self.voxels:
            raise CacheError(f"candidate {i}: decodes to {len(raw)} bytes")
        b = np.frombuffer(raw, dtype=np.uint8)
        if self.shuffled:
            # Low bytes first, then high bytes: interleave them back.
            b = np.stack([b[: self.voxels], b[self.voxels :]], axis=1).reshape(-1)
        return b.view("<i2").astype(np.int16).reshape(self.shape)

    def meta(self, i):
        e = self.entries[i]
        return dict(
            series_uid=self.series_uids[int(e["series"])],
            center_xyz=tuple(float(v) for v in e["center_xyz"]),
            center_irc=tuple(int(v) for v in e["center_irc"]),
            is_nodule=bool(e["is_nodule"]),
            diameter_mm=float(e["diameter_mm"]),
        )


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    cache = LunaCache(argv[1])
    for i in range(len(cache)):
        cache.chunk(i)
    m = cache.manifest
    print(f"{argv[1]}: {len(cache)} candidates ({m['positives']} positive), {m['series']} series, all chunks read")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
