//! The two files `torch.save` writes around its pickle, down to the
//! pickle and the bytes of each storage it names:
//!
//! - zip (torch ≥ 1.6's default): `<prefix>/data.pkl` and one entry
//!   `<prefix>/data/<key>` per storage (the `zip` crate reads the archive);
//! - legacy (`_use_new_zipfile_serialization=False`, and every file of
//!   torch < 1.6 such as the book's): pickles of torch's magic number, the
//!   protocol version and `sys_info`, then the object pickle, then the
//!   pickled list of storage keys, then per key an int64 element count and
//!   the storage's bytes.

use std::collections::HashMap;
use std::io::{Cursor, Read};
use std::ops::Range;

use tch::Kind;

use super::pickle::{self, Pickle, PickleError, Value};

/// `torch.serialization.MAGIC_NUMBER`.
const MAGIC: i128 = 0x1950a86a20f9469cfc6c;
/// `torch.serialization.PROTOCOL_VERSION`.
const PROTOCOL_VERSION: i128 = 1001;
const ZIP_MAGIC: &[u8] = b"PK\x03\x04";

/// Which container a file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Legacy,
    Zip,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Legacy => "legacy (pre-1.6) torch.save",
            Format::Zip => "zip torch.save",
        })
    }
}

/// Why a file could not be taken apart; the caller adds its path.
#[derive(Debug)]
pub enum ContainerError {
    NotTorch(String),
    Truncated(String),
    Pickle(&'static str, PickleError),
    Layout(String),
}

/// A file taken apart: its object pickle and where each storage's bytes are.
pub struct Container<'a> {
    pub format: Format,
    pub pickle: Pickle,
    storages: Storages<'a>,
}

enum Storages<'a> {
    /// Key → byte range of the file (after the element count).
    Legacy {
        data: &'a [u8],
        ranges: HashMap<String, Range<usize>>,
    },
    Zip {
        archive: Box<zip::ZipArchive<Cursor<&'a [u8]>>>,
        prefix: String,
    },
}

impl<'a> Container<'a> {
    pub fn open(data: &'a [u8]) -> Result<Self, ContainerError> {
        if data.starts_with(ZIP_MAGIC) {
            open_zip(data)
        } else {
            open_legacy(data)
        }
    }

    /// The bytes of storage `key`.
    pub fn storage(&mut self, key: &str) -> Result<Vec<u8>, ContainerError> {
        match &mut self.storages {
            Storages::Legacy { data, ranges } => ranges
                .get(key)
                .map(|r| data[r.clone()].to_vec())
                .ok_or_else(|| {
                    ContainerError::Layout(format!("storage {key:?} is not in the file"))
                }),
            Storages::Zip { archive, prefix } => {
                let name = format!("{prefix}data/{key}");
                let mut entry = archive.by_name(&name).map_err(|e| {
                    ContainerError::Layout(format!("storage {name:?} of the archive: {e}"))
                })?;
                let mut bytes = Vec::with_capacity(entry.size().min(1 << 30) as usize);
                entry.read_to_end(&mut bytes).map_err(|e| {
                    ContainerError::Truncated(format!("storage {name:?} of the archive: {e}"))
                })?;
                Ok(bytes)
            }
        }
    }
}

fn pickle_at(data: &[u8], what: &'static str) -> Result<Pickle, ContainerError> {
    pickle::parse(data).map_err(|e| match e {
        PickleError::Eof { .. } => {
            ContainerError::Truncated(format!("the file ends inside its {what}"))
        }
        e => ContainerError::Pickle(what, e),
    })
}

fn open_zip(data: &[u8]) -> Result<Container<'_>, ContainerError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(data)).map_err(|e| {
        ContainerError::Truncated(format!("a zip archive that cannot be read ({e})"))
    })?;
    let pkl = archive
        .file_names()
        .find(|n| n.ends_with("data.pkl") && n.matches('/').count() == 1)
        .map(str::to_owned)
        .ok_or_else(|| {
            ContainerError::NotTorch("a zip archive without <name>/data.pkl".to_owned())
        })?;
    let prefix = pkl.trim_end_matches("data.pkl").to_owned();
    if let Ok(mut order) = archive.by_name(&format!("{prefix}byteorder")) {
        let mut text = String::new();
        // Unreadable means damaged, which reading data.pkl reports.
        let _ = order.read_to_string(&mut text);
        if text.trim() == "big" {
            return Err(ContainerError::Layout(
                "big-endian tensors are not supported".into(),
            ));
        }
    }
    let mut bytes = Vec::new();
    archive
        .by_name(&pkl)
        .and_then(|mut e| e.read_to_end(&mut bytes).map_err(Into::into))
        .map_err(|e| ContainerError::Truncated(format!("{pkl} of the archive: {e}")))?;
    Ok(Container {
        format: Format::Zip,
        pickle: pickle_at(&bytes, "object pickle")?,
        storages: Storages::Zip {
            archive: Box::new(archive),
            prefix,
        },
    })
}

fn open_legacy(data: &[u8]) -> Result<Container<'_>, ContainerError> {
    let not_torch = || {
        ContainerError::NotTorch(
            "neither a zip archive nor a pickle that starts with torch's magic number".into(),
        )
    };
    // Anything but the magic number's own opcodes is not ours to parse.
    if !data.starts_with(&[0x80, 0x02, 0x8a, 0x0a]) {
        return Err(not_torch());
    }
    let magic = pickle_at(data, "magic number")?;
    if magic.int(magic.root) != Some(MAGIC) {
        return Err(not_torch());
    }
    let mut pos = magic.len;
    let version = pickle_at(&data[pos..], "protocol version")?;
    if version.int(version.root) != Some(PROTOCOL_VERSION) {
        return Err(ContainerError::Layout(format!(
            "torch serialization protocol {:?}, only {PROTOCOL_VERSION} is supported",
            version.get(version.root)
        )));
    }
    pos += version.len;
    let sys_info = pickle_at(&data[pos..], "sys_info")?;
    check_little_endian(&sys_info)?;
    pos += sys_info.len;
    let object = pickle_at(&data[pos..], "object pickle")?;
    pos += object.len;
    let keys = pickle_at(&data[pos..], "storage key list")?;
    pos += keys.len;
    let ranges = storage_ranges(data, pos, &object, &keys)?;
    Ok(Container {
        format: Format::Legacy,
        pickle: object,
        storages: Storages::Legacy { data, ranges },
    })
}

fn check_little_endian(sys_info: &Pickle) -> Result<(), ContainerError> {
    let Value::Dict(items) = sys_info.get(sys_info.root) else {
        return Err(ContainerError::Layout("sys_info is not a dict".into()));
    };
    let big = items.iter().any(|&(k, v)| {
        sys_info.str(k) == Some("little_endian") && *sys_info.get(v) == Value::Bool(false)
    });
    if big {
        return Err(ContainerError::Layout(
            "big-endian tensors are not supported".into(),
        ));
    }
    Ok(())
}

/// Where each storage's bytes are: the keys' list gives the order, the
/// object pickle each storage's element type.
fn storage_ranges(
    data: &[u8],
    mut pos: usize,
    object: &Pickle,
    keys: &Pickle,
) -> Result<HashMap<String, Range<usize>>, ContainerError> {
    let kinds: HashMap<String, Kind> = storage_refs(object)
        .into_iter()
        .map(|r| (r.key, r.kind))
        .collect();
    let Value::List(list) = keys.get(keys.root) else {
        return Err(ContainerError::Layout(
            "the storage key list is not a list".into(),
        ));
    };
    let mut ranges = HashMap::new();
    for &id in list {
        let key = keys
            .str(id)
            .ok_or_else(|| ContainerError::Layout("a storage key that is not a string".into()))?;
        let kind = kinds.get(key).ok_or_else(|| {
            ContainerError::Layout(format!("storage {key:?} is listed but no object uses it"))
        })?;
        let count = data
            .get(pos..pos + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
            .ok_or_else(|| {
                ContainerError::Truncated(format!("the file ends before storage {key:?}"))
            })?;
        pos += 8;
        let left = (data.len() - pos) as u64;
        let len = count
            .checked_mul(kind.elt_size_in_bytes() as u64)
            .filter(|&n| n <= left)
            .ok_or_else(|| {
                ContainerError::Truncated(format!(
                    "storage {key:?} holds {count} {kind:?} elements; the file ends {left} bytes into it"
                ))
            })? as usize;
        ranges.insert(key.to_owned(), pos..pos + len);
        pos += len;
    }
    Ok(ranges)
}

/// One storage as a persistent id names it.
#[derive(Clone, Debug, PartialEq)]
pub struct StorageRef {
    pub key: String,
    pub kind: Kind,
    /// Elements in the storage.
    pub numel: i128,
}

/// Every `('storage', torch.XStorage, key, location, numel, …)` id in the pickle.
fn storage_refs(pickle: &Pickle) -> Vec<StorageRef> {
    pickle
        .values
        .iter()
        .filter_map(|v| match v {
            Value::Persistent(pid) => storage_ref(pickle, *pid).ok(),
            _ => None,
        })
        .collect()
}

/// The storage a persistent id names, or why it names none.
pub fn storage_ref(pickle: &Pickle, pid: pickle::Id) -> Result<StorageRef, String> {
    let Value::Tuple(items) = pickle.get(pid) else {
        return Err("a persistent id that is not a tuple".into());
    };
    if items.len() < 5 || pickle.str(items[0]) != Some("storage") {
        return Err("a persistent id that is not a storage".into());
    }
    if let Some(&view) = items.get(5) {
        if *pickle.get(view) != Value::None {
            return Err("a storage view (torch < 0.4) is not supported".into());
        }
    }
    let kind = match pickle.get(items[1]) {
        Value::Global { module, name } if module == "torch" => storage_kind(name)
            .ok_or_else(|| format!("storage type torch.{name} is not supported"))?,
        other => return Err(format!("storage type {other:?}")),
    };
    let key = match pickle.get(items[2]) {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        _ => return Err("a storage key that is not a string".into()),
    };
    let numel = pickle
        .int(items[4])
        .filter(|&n| n >= 0)
        .ok_or("a storage size that is not a count")?;
    Ok(StorageRef { key, kind, numel })
}

fn storage_kind(name: &str) -> Option<Kind> {
    Some(match name {
        "FloatStorage" => Kind::Float,
        "DoubleStorage" => Kind::Double,
        "HalfStorage" => Kind::Half,
        "BFloat16Storage" => Kind::BFloat16,
        "LongStorage" => Kind::Int64,
        "IntStorage" => Kind::Int,
        "ShortStorage" => Kind::Int16,
        "CharStorage" => Kind::Int8,
        "ByteStorage" => Kind::Uint8,
        "BoolStorage" => Kind::Bool,
        _ => return None,
    })
}
