//! Reading a `model.safetensors` as bytes, without the model: its
//! metadata and each tensor's raw data, so a test compares weights bit for
//! bit. The format is an 8-byte little-endian header length, the JSON
//! header (`__metadata__` and, per tensor, dtype, shape and data offsets),
//! then the data.

use std::collections::BTreeMap;
use std::path::Path;

/// A safetensors file: its metadata and every tensor's bytes by name.
pub struct TensorFile {
    pub metadata: BTreeMap<String, String>,
    pub tensors: BTreeMap<String, Vec<u8>>,
}

/// Reads `path`; panics with the path on anything malformed (a test helper).
pub fn read(path: &Path) -> TensorFile {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let len = u64::from_le_bytes(bytes[..8].try_into().expect("8 header-length bytes")) as usize;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + len]).expect("safetensors header is JSON");
    let data = &bytes[8 + len..];
    let mut file = TensorFile {
        metadata: BTreeMap::new(),
        tensors: BTreeMap::new(),
    };
    for (name, value) in header {
        if name == "__metadata__" {
            let meta = value.as_object().expect("metadata is an object");
            for (k, v) in meta {
                file.metadata
                    .insert(k.clone(), v.as_str().unwrap_or_default().to_owned());
            }
            continue;
        }
        let offsets = &value["data_offsets"];
        let start = offsets[0].as_u64().expect("data offset") as usize;
        let end = offsets[1].as_u64().expect("data offset") as usize;
        file.tensors.insert(name, data[start..end].to_vec());
    }
    file
}
