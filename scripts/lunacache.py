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
# Limits shared with the Rust reader (shared/src/cache/format.rs).
MAX_CHUNK_VOXELS = 1 << 24
MAX_CROP_EDGE = 4096
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


def header_text(m):
    """The text `header_checksum` covers (shared/src/cache/format.rs, header_text)."""
    c = m["codec"]
    lines = [
        "luna-cache-header-v1",
        f"format_version={m['format_version']}",
        f"dtype={m['dtype']}",
        "crop_shape=" + ",".join(str(v) for v in m["crop_shape"]),
        "clip_hu=" + ",".join(str(v) for v in m["clip_hu"]),
        f"codec.compressor={c['compressor']}",
        f"codec.filter={c['filter']}",
        f"codec.level={c['level']}",
    ] + [f"{k}={m[k]}" for k in ("candidates", "positives", "series", "shards", "stored_bytes", "raw_bytes", "index_bytes", "fingerprint")]
    return "".join(line + "\n" for line in lines)


def check_manifest(m, path):
    """Refuse an edited header or sizes no real cache has, as the Rust reader does."""
    if "header_checksum" in m:
        computed = "crc32:%08x" % zlib.crc32(header_text(m).encode("utf-8"))
        if m["header_checksum"] != computed:
            raise CacheError(f"{path}: header_checksum is {m['header_checksum']}, the fields it covers give {computed}")
    shape = m["crop_shape"]
    if m["dtype"] != "int16":
        raise CacheError(f"{path}: dtype {m['dtype']!r}: only 'int16' is supported")
    if len(shape) != 3 or any(not isinstance(v, int) or not 0 < v <= MAX_CROP_EDGE for v in shape):
        raise CacheError(f"{path}: crop_shape {shape}: each edge must be 1 to {MAX_CROP_EDGE}")
    if shape[0] * shape[1] * shape[2] > MAX_CHUNK_VOXELS:
        raise CacheError(f"{path}: crop_shape {shape}: at most {MAX_CHUNK_VOXELS} voxels a chunk are supported")


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
        check_manifest(self.manifest, manifest_path)
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

        def count(what, each):
            # Checked against what is left before anything is built from it.
            n = u64()
            if n * each > len(data) - pos:
                raise CacheError(f"{path}: {what} {n} cannot fit in the {len(data) - pos} bytes left")
            return n

        def string():
            nonlocal pos
            n = count("string length", 1)
            s = data[pos : pos + n].decode("utf-8")
            pos += n
            return s

        if len(data) < 12 + 24:
            raise CacheError(f"{path}: truncated")
        self.series_uids = [string() for _ in range(count("series count", 8))]
        self.shards = [(string(), u64()) for _ in range(count("shard count", 16))]
        count = count("entry count", ENTRY_DTYPE.itemsize)
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
