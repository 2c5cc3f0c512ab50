//! Chunk codec: int16 crop ⇄ one zstd frame, through the byte-shuffle filter.
//!
//! Encoders and decoders own their zstd context and scratch buffers so that a
//! worker thread reuses them for every chunk: no allocation per chunk.

use super::format::{Codec, Filter};

/// Why a chunk could not be encoded or decoded (the caller adds path/index).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("chunk has {got} voxels, expected {expected}")]
    WrongLength { expected: usize, got: usize },
    #[error("zstd: {0}")]
    Zstd(String),
    #[error("frame decompresses to {got} bytes, expected {expected}")]
    WrongDecodedSize { expected: usize, got: usize },
}

/// Encodes chunks of a fixed voxel count.
pub struct ChunkEncoder {
    codec: Codec,
    voxels: usize,
    compressor: zstd::bulk::Compressor<'static>,
    filtered: Vec<u8>,
    frame: Vec<u8>,
}

impl ChunkEncoder {
    pub fn new(codec: Codec, voxels: usize) -> Result<Self, CodecError> {
        let compressor = zstd::bulk::Compressor::new(codec.level)
            .map_err(|e| CodecError::Zstd(e.to_string()))?;
        Ok(ChunkEncoder {
            codec,
            voxels,
            compressor,
            filtered: vec![0; voxels * 2],
            frame: Vec::with_capacity(zstd::zstd_safe::compress_bound(voxels * 2)),
        })
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Filter and compress `chunk`; the frame is valid until the next call.
    pub fn encode(&mut self, chunk: &[i16]) -> Result<&[u8], CodecError> {
        if chunk.len() != self.voxels {
            return Err(CodecError::WrongLength {
                expected: self.voxels,
                got: chunk.len(),
            });
        }
        apply_filter(self.codec.filter, chunk, &mut self.filtered);
        self.frame.clear();
        self.compressor
            .compress_to_buffer(&self.filtered[..], &mut self.frame)
            .map_err(|e| CodecError::Zstd(e.to_string()))?;
        Ok(&self.frame)
    }
}

/// Decodes chunks of a fixed voxel count; one per thread.
pub struct ChunkDecoder {
    filter: Filter,
    decompressor: zstd::bulk::Decompressor<'static>,
    scratch: Vec<u8>,
}

impl ChunkDecoder {
    pub fn new(filter: Filter, voxels: usize) -> Result<Self, CodecError> {
        let decompressor =
            zstd::bulk::Decompressor::new().map_err(|e| CodecError::Zstd(e.to_string()))?;
        Ok(ChunkDecoder {
            filter,
            decompressor,
            scratch: vec![0; voxels * 2],
        })
    }

    pub fn voxels(&self) -> usize {
        self.scratch.len() / 2
    }

    /// Decompress one frame into `out` (`out.len()` voxels).
    pub fn decode(&mut self, frame: &[u8], out: &mut [i16]) -> Result<(), CodecError> {
        let expected = self.scratch.len();
        if out.len() * 2 != expected {
            return Err(CodecError::WrongLength {
                expected: expected / 2,
                got: out.len(),
            });
        }
        // A frame that would overflow the scratch is an error from zstd, not a
        // reallocation: the buffer is a fixed slice.
        let got = self
            .decompressor
            .decompress_to_buffer(frame, &mut self.scratch[..])
            .map_err(|e| CodecError::Zstd(e.to_string()))?;
        if got != expected {
            return Err(CodecError::WrongDecodedSize { expected, got });
        }
        remove_filter(self.filter, &self.scratch, out);
        Ok(())
    }
}

/// `chunk` → bytes in the stored byte order. `out.len() == 2 * chunk.len()`.
pub fn apply_filter(filter: Filter, chunk: &[i16], out: &mut [u8]) {
    match filter {
        Filter::None => {
            for (dst, v) in out.chunks_exact_mut(2).zip(chunk) {
                dst.copy_from_slice(&v.to_le_bytes());
            }
        }
        Filter::ByteShuffle => {
            let (low, high) = out.split_at_mut(chunk.len());
            for ((l, h), v) in low.iter_mut().zip(high.iter_mut()).zip(chunk) {
                let [a, b] = v.to_le_bytes();
                *l = a;
                *h = b;
            }
        }
    }
}

/// Inverse of [`apply_filter`].
pub fn remove_filter(filter: Filter, bytes: &[u8], out: &mut [i16]) {
    match filter {
        Filter::None => {
            for (v, src) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *v = i16::from_le_bytes([src[0], src[1]]);
            }
        }
        Filter::ByteShuffle => {
            let (low, high) = bytes.split_at(out.len());
            for ((v, l), h) in out.iter_mut().zip(low).zip(high) {
                *v = i16::from_le_bytes([*l, *h]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(n: usize) -> Vec<i16> {
        (0..n)
            .map(|k| ((k as i64 * 37) % 2001 - 1000) as i16)
            .collect()
    }

    #[test]
    fn shuffle_puts_low_bytes_first() {
        let mut out = [0u8; 4];
        apply_filter(Filter::ByteShuffle, &[0x0102, -2], &mut out);
        assert_eq!(out, [0x02, 0xfe, 0x01, 0xff]);
        let mut back = [0i16; 2];
        remove_filter(Filter::ByteShuffle, &out, &mut back);
        assert_eq!(back, [0x0102, -2]);
    }

    #[test]
    fn both_filters_round_trip_through_zstd() {
        let chunk = ramp(1000);
        for filter in [Filter::None, Filter::ByteShuffle] {
            let mut enc = ChunkEncoder::new(Codec::zstd(filter, 3), chunk.len()).unwrap();
            let frame = enc.encode(&chunk).unwrap().to_vec();
            let mut dec = ChunkDecoder::new(filter, chunk.len()).unwrap();
            let mut out = vec![0i16; chunk.len()];
            dec.decode(&frame, &mut out).unwrap();
            assert_eq!(out, chunk, "{filter:?}");
        }
    }

    #[test]
    fn wrong_sizes_are_errors_not_panics() {
        let mut enc = ChunkEncoder::new(Codec::default(), 100).unwrap();
        assert_eq!(
            enc.encode(&[0; 99]).unwrap_err(),
            CodecError::WrongLength {
                expected: 100,
                got: 99
            }
        );
        let frame = enc.encode(&[5; 100]).unwrap().to_vec();
        let mut small = ChunkDecoder::new(Filter::ByteShuffle, 50).unwrap();
        assert!(small.decode(&frame, &mut [0; 50]).is_err());
        let mut big = ChunkDecoder::new(Filter::ByteShuffle, 200).unwrap();
        assert_eq!(
            big.decode(&frame, &mut [0; 200]).unwrap_err(),
            CodecError::WrongDecodedSize {
                expected: 400,
                got: 200
            }
        );
        let mut ok = ChunkDecoder::new(Filter::ByteShuffle, 100).unwrap();
        assert!(ok.decode(&frame[..frame.len() - 3], &mut [0; 100]).is_err());
    }
}
