//! Opening the files a header names so that no input can hang or surprise
//! the reader: a FIFO would block `open` until a writer appears (and then
//! stream without end), a device or directory has no meaningful size, and a
//! dangling symbolic link deserves to be called one rather than "not found".

use std::fs::{self, File, Metadata, OpenOptions};
use std::io;
use std::path::Path;

use super::MetaImageError;

/// Open `path` for reading, requiring a regular file. `owner` is the header
/// the error is reported against (the file itself when it is the header).
///
/// On Unix the open is non-blocking, so a FIFO is refused at once instead of
/// waiting for a writer; the type is then checked on the open handle, so a
/// file swapped for another between a check and the open cannot slip by.
pub(crate) fn open_regular(path: &Path, owner: &Path) -> Result<(File, Metadata), MetaImageError> {
    let file = open_nonblocking(path).map_err(|e| open_error(path, owner, e))?;
    let meta = file.metadata().map_err(|e| MetaImageError::io(path, e))?;
    check_regular(path, owner, &meta)?;
    Ok((file, meta))
}

/// The metadata of a data file (following links), requiring a regular file;
/// nothing is opened, so a FIFO cannot block.
pub(crate) fn regular_metadata(path: &Path, owner: &Path) -> Result<Metadata, MetaImageError> {
    let meta = fs::metadata(path).map_err(|e| open_error(path, owner, e))?;
    check_regular(path, owner, &meta)?;
    Ok(meta)
}

#[cfg(unix)]
fn open_nonblocking(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

#[cfg(not(unix))]
fn open_nonblocking(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).open(path)
}

fn check_regular(path: &Path, owner: &Path, meta: &Metadata) -> Result<(), MetaImageError> {
    if meta.is_file() {
        return Ok(());
    }
    let what = describe_file_type(meta);
    let reason = if path == owner {
        format!("is {what}, not a regular file; refusing to read it")
    } else {
        format!(
            "data file {} is {what}, not a regular file; refusing to read it",
            path.display()
        )
    };
    Err(MetaImageError::invalid(owner, reason))
}

/// What a path that is not a regular file is, for a refusal: "a
/// directory", "a FIFO (named pipe)", "a socket", "a device".
pub fn describe_file_type(meta: &Metadata) -> &'static str {
    let kind = meta.file_type();
    if kind.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if kind.is_socket() {
            return "a socket";
        }
        if kind.is_block_device() || kind.is_char_device() {
            return "a device";
        }
    }
    "not a regular file"
}

/// A missing file that is a symbolic link is named as a dangling link, with
/// its target, so a broken link farm is recognisable from the message.
fn open_error(path: &Path, owner: &Path, e: io::Error) -> MetaImageError {
    if e.kind() == io::ErrorKind::NotFound {
        if let Ok(target) = fs::read_link(path) {
            let reason = if path == owner {
                format!(
                    "is a dangling symbolic link (its target {} does not exist)",
                    target.display()
                )
            } else {
                format!(
                    "data file {} is a dangling symbolic link (its target {} does not exist)",
                    path.display(),
                    target.display()
                )
            };
            return MetaImageError::invalid(owner, reason);
        }
    }
    if path == owner {
        MetaImageError::io(path, e)
    } else {
        let reason = if e.kind() == io::ErrorKind::NotFound {
            format!("data file {} does not exist", path.display())
        } else {
            format!("data file {}: {e}", path.display())
        };
        MetaImageError::invalid(owner, reason)
    }
}
