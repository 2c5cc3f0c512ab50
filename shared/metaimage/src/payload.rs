//! Locating and loading the voxel bytes a header points at.
//!
//! Two phases so that no buffer is allocated before the files are known to
//! hold the data the header promises: [`plan`] resolves every data file and
//! checks its size against DimSize (cheap metadata calls only); [`fill`] then
//! reads straight into the caller's final buffer.

use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use flate2::read::{MultiGzDecoder, ZlibDecoder};

use super::element::{bytes_of_mut, Element};
use super::header::{DataFile, Header, HeaderSize};
use super::{files, pattern, MetaImageError};

/// Deflate cannot expand data by more than ~1032:1; a header asking for more
/// than that from a small stream is corrupt, and is refused before allocating.
const MAX_INFLATE_RATIO: u64 = 1032;

/// One data file and the byte range of the output it fills.
#[derive(Debug)]
struct Chunk {
    path: PathBuf,
    start: u64,
    stored_len: u64,
    out_len: usize,
}

#[derive(Debug)]
pub(crate) struct Plan {
    chunks: Vec<Chunk>,
    compressed: bool,
    /// Total uncompressed bytes; the size `fill` expects.
    pub(crate) len: usize,
}

impl Plan {
    /// The file and byte offset of the voxels when they are one uncompressed
    /// run in one file, i.e. usable in place.
    pub(crate) fn single_raw_run(&self) -> Option<(&Path, u64)> {
        match self.chunks.as_slice() {
            [only] if !self.compressed => Some((&only.path, only.start)),
            _ => None,
        }
    }

    /// Human-readable list of the data files, for `inspect`.
    pub(crate) fn describe(&self) -> String {
        let first = self
            .chunks
            .first()
            .map(|c| c.path.display().to_string())
            .unwrap_or_default();
        let kind = if self.compressed { "compressed" } else { "raw" };
        match self.chunks.len() {
            1 => format!("{first} ({kind}, from byte {})", self.chunks[0].start),
            n => format!("{n} files ({kind}), first {first}"),
        }
    }
}

pub(crate) fn plan(header: &Header) -> Result<Plan, MetaImageError> {
    let total = header.data_len()?;
    let folder = header.path.parent().unwrap_or(Path::new(""));
    let mut compressed = header.compressed;
    let files: Vec<(PathBuf, u64)> = match &header.data_file {
        DataFile::Local => vec![(header.path.clone(), header.data_offset)],
        DataFile::File(name) => {
            let path = folder.join(name);
            // ITK falls back to a gzipped copy beside the named file.
            let gz = PathBuf::from(format!("{}.gz", path.display()));
            if !path.exists() && gz.exists() {
                compressed = true;
                vec![(gz, 0)]
            } else {
                vec![(path, 0)]
            }
        }
        DataFile::List { names, .. } => names.iter().map(|n| (folder.join(n), 0)).collect(),
        DataFile::Pattern {
            pattern,
            min,
            max,
            step,
        } => {
            let slices = header.dims[header.ndims() - 1];
            let named = (i128::from(*max) - i128::from(*min)) / i128::from(*step) + 1;
            if named < slices as i128 {
                return Err(header.invalid(format!(
                    "ElementDataFile pattern {pattern:?} {min}..={max} step {step} names {named} files, DimSize needs {slices}"
                )));
            }
            // Built one by one so a missing file stops the walk before a
            // bogus DimSize makes it generate millions of names.
            let per_file = total / slices;
            let mut chunks = Vec::new();
            for k in 0..slices {
                let n = *min + (k as i64) * *step;
                let name = pattern::format(pattern, n).map_err(|e| header.invalid(e))?;
                chunks.push(chunk(header, folder.join(name), 0, per_file, compressed)?);
            }
            return Ok(Plan {
                chunks,
                compressed,
                len: total,
            });
        }
    };
    if files.len() > 1 && header.compressed_size.is_some() {
        return Err(header
            .invalid("CompressedDataSize cannot apply to a multi-file (LIST or pattern) image"));
    }
    let per_file = total / files.len();
    let chunks = files
        .into_iter()
        .map(|(path, base)| chunk(header, path, base, per_file, compressed))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Plan {
        chunks,
        compressed,
        len: total,
    })
}

fn chunk(
    header: &Header,
    path: PathBuf,
    base: u64,
    out_len: usize,
    compressed: bool,
) -> Result<Chunk, MetaImageError> {
    // A FIFO or device has no size to check against DimSize (and would
    // block or stream forever): refused here, before anything is read.
    let file_len = files::regular_metadata(&path, &header.path)?.len();
    let want = out_len as u64;
    let short = |have: u64, need: u64| {
        header.invalid(format!(
            "data file {} is truncated: {have} bytes where {need} are needed",
            path.display()
        ))
    };
    let start = match header.header_size {
        HeaderSize::Default => base,
        HeaderSize::Skip(n) => n,
        HeaderSize::Tail => {
            let tail = if compressed {
                header.compressed_size.ok_or_else(|| {
                    header.invalid("HeaderSize = -1 with compressed data needs CompressedDataSize")
                })?
            } else {
                want
            };
            file_len
                .checked_sub(tail)
                .ok_or_else(|| short(file_len, tail))?
        }
    };
    if start > file_len {
        return Err(short(file_len, start));
    }
    let available = file_len - start;
    let stored_len = if compressed {
        let stored = header.compressed_size.unwrap_or(available);
        if stored > available {
            return Err(short(available, stored));
        }
        if want
            > stored
                .saturating_mul(MAX_INFLATE_RATIO)
                .saturating_add(1024)
        {
            return Err(header.invalid(format!(
                "{} compressed bytes in {} cannot inflate to the {want} bytes DimSize needs",
                stored,
                path.display()
            )));
        }
        stored
    } else {
        if available != want {
            let what = if available < want {
                "truncated"
            } else {
                "too long"
            };
            return Err(header.invalid(format!(
                "data in {} is {what}: {available} bytes from offset {start}, DimSize {:?} × {} channel(s) × {} B needs {want}",
                path.display(),
                header.dims,
                header.channels,
                header.element_type.size()
            )));
        }
        available
    };
    Ok(Chunk {
        path,
        start,
        stored_len,
        out_len,
    })
}

/// Uncompressed data is read in pieces this big, each handed to the caller
/// while it is still in cache (byte-order fix): one trip through
/// memory instead of two.
const PIECE_BYTES: usize = 1 << 17;

/// Read every chunk into `out` (exactly `plan.len` bytes as `T`s), calling
/// `piece_done` on each filled piece, still in file byte order.
pub(crate) fn fill<T: Element>(
    header: &Header,
    plan: &Plan,
    out: &mut [T],
    mut piece_done: impl FnMut(&mut [T]),
) -> Result<(), MetaImageError> {
    let size = std::mem::size_of::<T>();
    debug_assert_eq!(std::mem::size_of_val(out), plan.len);
    let mut rest = out;
    for chunk in &plan.chunks {
        let (dst, tail) = rest.split_at_mut(chunk.out_len / size);
        rest = tail;
        let io_err = |e| MetaImageError::io(&chunk.path, e);
        let (mut file, _) = files::open_regular(&chunk.path, &header.path)?;
        file.seek(SeekFrom::Start(chunk.start)).map_err(io_err)?;
        if plan.compressed {
            inflate(
                header,
                chunk,
                file.take(chunk.stored_len),
                bytes_of_mut(dst),
            )?;
            piece_done(dst);
        } else {
            for piece in dst.chunks_mut(PIECE_BYTES / size) {
                file.read_exact(bytes_of_mut(piece)).map_err(io_err)?;
                piece_done(piece);
            }
        }
    }
    Ok(())
}

/// MetaIO writes zlib streams; gzip (magic 1f 8b) is accepted as well.
fn inflate(
    header: &Header,
    chunk: &Chunk,
    mut stream: impl Read,
    dst: &mut [u8],
) -> Result<(), MetaImageError> {
    let mut magic = [0u8; 2];
    let got =
        read_up_to(&mut stream, &mut magic).map_err(|e| MetaImageError::io(&chunk.path, e))?;
    let head = io::Cursor::new(magic[..got].to_vec()).chain(stream);
    let mut decoder: Box<dyn Read> = if magic == [0x1f, 0x8b] {
        Box::new(MultiGzDecoder::new(head))
    } else {
        Box::new(ZlibDecoder::new(head))
    };
    let want = dst.len();
    let corrupt = |e: io::Error| {
        let reason = if e.kind() == io::ErrorKind::UnexpectedEof {
            format!(
                "compressed data in {} inflates to fewer than the {want} bytes DimSize needs",
                chunk.path.display()
            )
        } else {
            format!(
                "compressed data in {} is corrupt: {e}",
                chunk.path.display()
            )
        };
        header.invalid(reason)
    };
    decoder.read_exact(dst).map_err(corrupt)?;
    let mut extra = [0u8; 1];
    if read_up_to(&mut decoder, &mut extra).map_err(corrupt)? > 0 {
        return Err(header.invalid(format!(
            "compressed data in {} inflates to more than the {want} bytes DimSize needs",
            chunk.path.display()
        )));
    }
    Ok(())
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
