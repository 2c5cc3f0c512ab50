//! Decoding `index.bin` without trusting it: every count is checked against
//! the bytes left in the file before anything is allocated for it, so a
//! corrupt or crafted count (2^60 series) is an error naming the field, not
//! an allocation failure that aborts the process.

use std::path::Path;

use super::error::CacheError;
use super::format::{Entry, Index, ShardInfo, ENTRY_RECORD_BYTES, INDEX_MAGIC};

/// Decode `bytes` (the whole of `index.bin` at `path`) as laid out in
/// [`super::format`]. The caller has checked magic and version.
pub fn decode_index(bytes: &[u8], path: &Path) -> Result<Index, CacheError> {
    let mut c = Cursor {
        bytes,
        pos: 0,
        path,
    };
    c.take(INDEX_MAGIC.len(), "magic")?;
    let version = c.u32("version")?;
    // A u64 length (8 bytes) per uid at least.
    let n = c.count("series count", 8)?;
    let mut series = Vec::with_capacity(n);
    for _ in 0..n {
        series.push(c.string("series uid")?);
    }
    // A u64 length and a u64 size (16 bytes) per shard at least.
    let n = c.count("shard count", 16)?;
    let mut shards = Vec::with_capacity(n);
    for _ in 0..n {
        let path = c.string("shard path")?;
        let bytes = c.u64("shard size")?;
        shards.push(ShardInfo { path, bytes });
    }
    let n = c.count("entry count", ENTRY_RECORD_BYTES)?;
    let left = bytes.len() - c.pos;
    if n * ENTRY_RECORD_BYTES != left {
        return Err(c.corrupt(format!(
            "entry count {n} needs {} bytes of records, the file has {left} left",
            n * ENTRY_RECORD_BYTES
        )));
    }
    let mut entries = Vec::with_capacity(n);
    for k in 0..n {
        entries.push(c.entry(k)?);
    }
    Ok(Index {
        magic: INDEX_MAGIC,
        version,
        series,
        shards,
        entries,
    })
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn corrupt(&self, reason: String) -> CacheError {
        CacheError::Corrupt {
            path: self.path.to_owned(),
            reason,
        }
    }

    fn left(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], CacheError> {
        if n > self.left() {
            return Err(self.corrupt(format!(
                "{what} at byte {} needs {n} bytes, the file ends {} bytes later",
                self.pos,
                self.left()
            )));
        }
        let bytes: &'a [u8] = self.bytes;
        let out = &bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], CacheError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u32(&mut self, what: &str) -> Result<u32, CacheError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, CacheError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A `u64` count of items of at least `min_each` bytes, refused when the
    /// rest of the file could not hold that many.
    fn count(&mut self, what: &str, min_each: usize) -> Result<usize, CacheError> {
        let at = self.pos;
        let n = self.u64(what)?;
        let fits = usize::try_from(n)
            .ok()
            .filter(|&n| n.checked_mul(min_each).is_some_and(|b| b <= self.left()));
        fits.ok_or_else(|| {
            self.corrupt(format!(
                "{what} {n} (at byte {at}) cannot fit in the {} bytes left",
                self.left()
            ))
        })
    }

    fn string(&mut self, what: &str) -> Result<String, CacheError> {
        let n = self.count(what, 1)?;
        let at = self.pos;
        let raw = self.take(n, what)?;
        String::from_utf8(raw.to_vec())
            .map_err(|_| self.corrupt(format!("{what} at byte {at} is not UTF-8")))
    }

    fn entry(&mut self, k: usize) -> Result<Entry, CacheError> {
        let r = self.take(ENTRY_RECORD_BYTES, "entry")?;
        let u32_at = |o: usize| u32::from_le_bytes([r[o], r[o + 1], r[o + 2], r[o + 3]]);
        let i32_at = |o: usize| u32_at(o) as i32;
        let u64_at = |o: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&r[o..o + 8]);
            u64::from_le_bytes(b)
        };
        let f64_at = |o: usize| f64::from_bits(u64_at(o));
        let is_nodule = match r[40] {
            0 => false,
            1 => true,
            v => return Err(self.corrupt(format!("entry {k}: is_nodule byte is {v}, not 0 or 1"))),
        };
        Ok(Entry {
            series: u32_at(0),
            center_xyz: [f64_at(4), f64_at(12), f64_at(20)],
            center_irc: [i32_at(28), i32_at(32), i32_at(36)],
            is_nodule,
            diameter_mm: f64_at(41),
            shard: u32_at(49),
            offset: u64_at(53),
            length: u32_at(61),
            crc32: u32_at(65),
        })
    }
}
