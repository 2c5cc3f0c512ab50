//! Print the `inspect` report of MetaImage files: header keys, dimensions,
//! element type, geometry, data files and HU statistics.
//!
//!     cargo run -p metaimage --example inspect -- FILE.mhd [FILE.mha ...]
//!
//! A file that cannot be read is reported on stderr with the reason, the
//! remaining files are still inspected, and the exit status is 1 (2 for bad
//! usage).

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let files: Vec<String> = std::env::args().skip(1).collect();
    if files.is_empty() || files.iter().any(|f| f == "-h" || f == "--help") {
        eprintln!("usage: inspect FILE.mhd|FILE.mha...");
        return ExitCode::from(2);
    }
    let mut failed = false;
    for (k, file) in files.iter().enumerate() {
        if k > 0 {
            println!();
        }
        match metaimage::inspect(Path::new(file)) {
            Ok(report) => print!("{report}"),
            Err(e) => {
                // The error message starts with the file and says what is wrong.
                eprintln!("inspect: cannot read {e}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
