//! Benchmark: what zstd alone costs on a built cache's chunks.
//!
//! Decodes every chunk of CACHE into memory first (untimed), then, on one
//! thread, times compressing all of them at each `--levels` entry with the
//! byte-shuffle filter and without it, and times decompressing the cache's
//! own frames as the loader does (CRC check + zstd + unshuffle, best of
//! `--repeats`). These are the bounds `prepcache build` and the training
//! loader are compared against. One JSON object on stdout.
//!
//!     cargo run --release -p shared --example codec_bound -- CACHE [--levels 1,3] [--repeats 2]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use shared::cache::{CacheReader, ChunkEncoder, Codec, Filter};

fn main() {
    if let Err(e) = run() {
        eprintln!("codec_bound: {e}");
        std::process::exit(1);
    }
}

struct Args {
    cache: PathBuf,
    levels: Vec<i32>,
    repeats: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut cache = None;
    let mut levels = vec![1, 3];
    let mut repeats = 2;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--levels" => {
                let v = args.next().ok_or("--levels needs a value")?;
                levels = v
                    .split(',')
                    .map(|l| l.trim().parse().map_err(|_| format!("bad level {l:?}")))
                    .collect::<Result<_, _>>()?;
            }
            "--repeats" => {
                let v = args.next().ok_or("--repeats needs a value")?;
                repeats = v.parse().map_err(|_| format!("bad --repeats {v:?}"))?;
            }
            _ if cache.is_none() => cache = Some(PathBuf::from(arg)),
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    let cache = cache.ok_or("usage: codec_bound CACHE [--levels 1,3] [--repeats N]")?;
    if repeats == 0 || levels.is_empty() {
        return Err("--repeats and --levels must not be empty".into());
    }
    Ok(Args {
        cache,
        levels,
        repeats,
    })
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let cache = CacheReader::open(&args.cache).map_err(|e| e.to_string())?;
    let voxels = cache.chunk_voxels();
    let n = cache.len();
    if n == 0 {
        return Err(format!("{}: the cache is empty", args.cache.display()));
    }

    let mut chunks = vec![0i16; n * voxels];
    let mut decoder = cache.decoder();
    for (i, out) in chunks.chunks_exact_mut(voxels).enumerate() {
        cache
            .read_chunk(&mut decoder, i, out)
            .map_err(|e| e.to_string())?;
    }

    let mut best_decode = Duration::MAX;
    let mut scratch = vec![0i16; voxels];
    for _ in 0..args.repeats {
        let start = Instant::now();
        for i in 0..n {
            cache
                .read_chunk(&mut decoder, i, &mut scratch)
                .map_err(|e| e.to_string())?;
        }
        best_decode = best_decode.min(start.elapsed());
    }

    let mut compress = Vec::new();
    for &level in &args.levels {
        for filter in [Filter::ByteShuffle, Filter::None] {
            let codec = Codec::zstd(filter, level);
            let mut encoder = ChunkEncoder::new(codec, voxels).map_err(|e| e.to_string())?;
            let start = Instant::now();
            let mut stored = 0usize;
            for chunk in chunks.chunks_exact(voxels) {
                stored += encoder.encode(chunk).map_err(|e| e.to_string())?.len();
            }
            let secs = start.elapsed().as_secs_f64();
            compress.push(serde_json::json!({
                "level": level,
                "filter": if filter == Filter::None { "none" } else { "byte_shuffle" },
                "seconds": secs,
                "stored_bytes": stored,
            }));
        }
    }

    let summary = serde_json::json!({
        "cache": args.cache,
        "codec": cache.manifest().codec.to_string(),
        "candidates": n,
        "chunk_bytes": voxels * 2,
        "stored_bytes": (0..n).map(|i| cache.stored_bytes(i).len()).sum::<usize>(),
        "decode_s": best_decode.as_secs_f64(),
        "compress": compress,
    });
    println!("{summary}");
    Ok(())
}
