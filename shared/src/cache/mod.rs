//! The candidate cache: every candidate's (32, 48, 48) int16 crop, decoded
//! from its scan once by `prepcache` and read back by `train` from
//! memory-mapped shards.
//!
//! The layout is declared in [`format`](mod@format); [`CacheDir`] is a cache folder
//! as a writer sees it (paths, lock, seal, cleanup); [`codec`] turns a chunk into one
//! zstd frame and back; [`writer`] writes shards, the index and (last) the
//! manifest; [`reader`] opens a complete cache and reads chunks from any
//! thread.
//!
//! ```no_run
//! use shared::cache::CacheReader;
//! # fn main() -> Result<(), shared::cache::CacheError> {
//! let cache = CacheReader::open(std::path::Path::new("cache/demo"))?;
//! let mut dec = cache.decoder();
//! let mut chunk = vec![0i16; cache.chunk_voxels()];
//! for i in 0..cache.len() {
//!     cache.read_chunk(&mut dec, i, &mut chunk)?;
//! }
//! # Ok(()) }
//! ```

mod cache_dir;
pub mod codec;
mod error;
pub mod format;
mod index_decode;
mod manifest_check;
pub mod reader;
pub mod writer;

pub use cache_dir::{CacheDir, CacheDirError};
pub use codec::{ChunkDecoder, ChunkEncoder, CodecError};
pub use error::CacheError;
pub use format::{Codec, Compressor, Entry, Filter, Manifest, ShardInfo, Skipped, FORMAT_VERSION};
pub use reader::CacheReader;
pub use writer::{CacheBuilder, CandidateMeta};
