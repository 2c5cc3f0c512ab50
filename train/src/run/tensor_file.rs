//! One safetensors file as checkpoints keep it: written byte for byte the
//! same for the same tensors and metadata, with a CRC-32 of every
//! tensor's bytes in its metadata; read back with every size checked
//! against the file before anything is allocated and every checksum
//! verified, so a damaged checkpoint is refused instead of trained on.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorInfo, View};
use tch::{Device, Kind, Tensor};

use super::checkpoint::CheckpointError;
use shared::durable::write_atomically;

/// Metadata key holding `{tensor name: CRC-32 of its bytes, hex}`.
pub const CHECKSUMS_KEY: &str = "luna_tensor_checksums";
/// No checkpoint of any LunaModel variant comes near this; a larger file
/// is not one, and is refused before it is read into memory.
const MAX_FILE_BYTES: u64 = 8 << 30;
/// The deepest tensor a checkpoint holds is a 3-D convolution's (rank 5).
const MAX_RANK: usize = 8;

/// A host copy of a tensor in safetensors' terms.
pub struct HostTensor {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

impl HostTensor {
    pub fn from_tensor(t: &Tensor) -> Self {
        let t = t.detach().to_device(Device::Cpu).contiguous();
        let (dtype, kind) = match t.kind() {
            Kind::Int64 => (Dtype::I64, Kind::Int64),
            _ => (Dtype::F32, Kind::Float),
        };
        let t = t.to_kind(kind);
        let numel = t.numel();
        let mut bytes = vec![0u8; numel * kind.elt_size_in_bytes()];
        t.copy_data_u8(&mut bytes, numel);
        HostTensor {
            dtype,
            shape: t.size().iter().map(|&d| d as usize).collect(),
            bytes,
        }
    }
}

impl View for &HostTensor {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// CRC-32 of a tensor's bytes, as 8 hex digits: it catches every burst of
/// flipped bits up to 32 long and any other damage but for 1 in 2^32.
fn checksum(bytes: &[u8]) -> String {
    format!("{:08x}", crc32fast::hash(bytes))
}

/// Writes `tensors` and `metadata` (plus the checksums) atomically.
pub fn write(
    path: &Path,
    tensors: &[(String, HostTensor)],
    mut metadata: BTreeMap<String, String>,
) -> Result<(), CheckpointError> {
    let format = |e: serde_json::Error| CheckpointError::Format {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let sums: BTreeMap<&str, String> = tensors
        .iter()
        .map(|(n, t)| (n.as_str(), checksum(&t.bytes)))
        .collect();
    metadata.insert(
        CHECKSUMS_KEY.to_owned(),
        serde_json::to_string(&sums).map_err(format)?,
    );
    let bytes = serialize(tensors, &metadata).map_err(format)?;
    Ok(write_atomically(path, &bytes)?)
}

/// The safetensors layout (tensors by descending dtype alignment, then by
/// name; header padded to 8 bytes), written here rather than by the
/// safetensors crate because the crate emits the metadata in `HashMap`
/// order, which differs between processes (safetensors issue #584), and a
/// checkpoint must be byte-identical when its weights are.
fn serialize(
    tensors: &[(String, HostTensor)],
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>, serde_json::Error> {
    let mut order: Vec<&(String, HostTensor)> = tensors.iter().collect();
    order.sort_by(|(ln, l), (rn, r)| r.dtype.cmp(&l.dtype).then(ln.cmp(rn)));
    let mut header = format!("{{\"__metadata__\":{}", serde_json::to_string(metadata)?);
    let mut offset = 0;
    for (name, t) in &order {
        let info = TensorInfo {
            dtype: t.dtype,
            shape: t.shape.clone(),
            data_offsets: (offset, offset + t.bytes.len()),
        };
        offset += t.bytes.len();
        header.push(',');
        header.push_str(&serde_json::to_string(name)?);
        header.push(':');
        header.push_str(&serde_json::to_string(&info)?);
    }
    header.push('}');
    while !header.len().is_multiple_of(8) {
        header.push(' ');
    }
    let mut out = Vec::with_capacity(8 + header.len() + offset);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for (_, t) in order {
        out.extend_from_slice(&t.bytes);
    }
    Ok(out)
}

/// What [`read`] found in a file.
pub struct TensorFile {
    pub tensors: Vec<(String, Tensor)>,
    pub metadata: HashMap<String, String>,
    /// Whether the file carried checksums (all verified). Files of an older
    /// `train` and PyTorch exports carry none.
    pub checksummed: bool,
}

/// Reads a checkpoint file: F32/I64 tensors only, sizes within the file,
/// checksums (when present) all matching.
pub fn read(path: &Path) -> Result<TensorFile, CheckpointError> {
    let bytes = read_bounded(path)?;
    let format = |e: safetensors::SafeTensorError| CheckpointError::Format {
        path: path.to_owned(),
        reason: format!("{e:?}"),
    };
    // Both check every offset and byte count against the buffer.
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(format)?;
    let st = SafeTensors::deserialize(&bytes).map_err(format)?;
    let metadata = meta.metadata().clone().unwrap_or_default();
    let views = st.tensors();
    for (name, view) in &views {
        check_shape(path, name, view.dtype(), view.shape(), bytes.len())?;
    }
    let checksummed = match metadata.get(CHECKSUMS_KEY) {
        Some(json) => {
            verify(path, json, &views)?;
            true
        }
        None => false,
    };
    let tensors = views
        .into_iter()
        .map(|(name, view)| {
            let kind = if view.dtype() == Dtype::I64 {
                Kind::Int64
            } else {
                Kind::Float
            };
            let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
            let tensor = Tensor::from_data_size(view.data(), &shape, kind);
            (name, tensor)
        })
        .collect();
    Ok(TensorFile {
        tensors,
        metadata,
        checksummed,
    })
}

/// Only the metadata of a checkpoint file (checked as [`read`] checks it,
/// but without the checksums, which [`read`] verifies when it loads the
/// tensors).
pub fn read_metadata(path: &Path) -> Result<HashMap<String, String>, CheckpointError> {
    let bytes = read_bounded(path)?;
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| CheckpointError::Format {
        path: path.to_owned(),
        reason: format!("{e:?}"),
    })?;
    Ok(meta.metadata().clone().unwrap_or_default())
}

/// The file's bytes, once its size is known to be a checkpoint's.
fn read_bounded(path: &Path) -> Result<Vec<u8>, CheckpointError> {
    let io = |source| CheckpointError::Io {
        path: path.to_owned(),
        source,
    };
    let len = fs::metadata(path).map_err(io)?.len();
    if len > MAX_FILE_BYTES {
        return Err(CheckpointError::Format {
            path: path.to_owned(),
            reason: format!("{len} bytes, more than any checkpoint ({MAX_FILE_BYTES} at most)"),
        });
    }
    fs::read(path).map_err(io)
}

/// A dtype the checkpoint can hold and a shape that fits the file: the
/// safetensors crate checks the byte count, but a tensor with a zero
/// dimension passes it with any other dimension, which libtorch refuses by
/// aborting.
fn check_shape(
    path: &Path,
    name: &str,
    dtype: Dtype,
    shape: &[usize],
    file_len: usize,
) -> Result<(), CheckpointError> {
    let reason = if !matches!(dtype, Dtype::F32 | Dtype::I64) {
        format!("tensor {name} has dtype {dtype:?}; expected F32 or I64")
    } else if shape.len() > MAX_RANK {
        format!(
            "tensor {name} has {} dimensions (at most {MAX_RANK})",
            shape.len()
        )
    } else if let Some(d) = shape.iter().find(|&&d| d > file_len) {
        format!("tensor {name} has a dimension of {d}, more than the file's {file_len} bytes")
    } else {
        return Ok(());
    };
    Err(CheckpointError::Mismatch {
        path: path.to_owned(),
        reason,
    })
}

/// Every tensor has its checksum and matches it, and no checksum names a
/// tensor the file lacks.
fn verify(
    path: &Path,
    json: &str,
    views: &[(String, safetensors::tensor::TensorView<'_>)],
) -> Result<(), CheckpointError> {
    let mismatch = |reason: String| CheckpointError::Mismatch {
        path: path.to_owned(),
        reason,
    };
    let sums: HashMap<String, String> = serde_json::from_str(json)
        .map_err(|e| mismatch(format!("{CHECKSUMS_KEY} metadata: {e}")))?;
    for (name, view) in views {
        match sums.get(name) {
            None => return Err(mismatch(format!("tensor {name} has no checksum"))),
            Some(sum) if *sum != checksum(view.data()) => {
                return Err(CheckpointError::Damaged {
                    path: path.to_owned(),
                    tensor: name.clone(),
                })
            }
            Some(_) => {}
        }
    }
    if let Some(name) = sums.keys().find(|n| !views.iter().any(|(v, _)| v == *n)) {
        return Err(mismatch(format!(
            "has a checksum for tensor {name} but not the tensor"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensors() -> Vec<(String, HostTensor)> {
        let a = Tensor::from_slice(&[1.0f32, -2.5, 3.25, 4.0]).view([2, 2]);
        let b = Tensor::from(7i64);
        vec![
            ("layer.weight".into(), HostTensor::from_tensor(&a)),
            ("layer.steps".into(), HostTensor::from_tensor(&b)),
        ]
    }

    fn metadata() -> BTreeMap<String, String> {
        BTreeMap::from([("b".into(), "2".into()), ("a".into(), "{\"x\":1}".into())])
    }

    #[test]
    fn written_files_read_back_verified_and_are_byte_identical() {
        let dir = tempfile::tempdir().unwrap();
        let (p1, p2) = (dir.path().join("1"), dir.path().join("2"));
        write(&p1, &tensors(), metadata()).unwrap();
        write(&p2, &tensors(), metadata()).unwrap();
        assert_eq!(fs::read(&p1).unwrap(), fs::read(&p2).unwrap());
        let file = read(&p1).unwrap();
        assert!(file.checksummed);
        assert_eq!(file.metadata["a"], "{\"x\":1}");
        let weight = &file
            .tensors
            .iter()
            .find(|(n, _)| n == "layer.weight")
            .unwrap()
            .1;
        assert_eq!(
            Vec::<f32>::try_from(weight.flatten(0, -1)).unwrap(),
            [1.0, -2.5, 3.25, 4.0]
        );
    }

    #[test]
    fn a_flipped_byte_is_refused_naming_the_file_and_tensor() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        write(&path, &tensors(), metadata()).unwrap();
        let mut bytes = fs::read(&path).unwrap();
        // The F32 tensor's data comes after the I64 one (8 bytes) at the end.
        let n = bytes.len();
        bytes[n - 3] ^= 0x40;
        fs::write(&path, &bytes).unwrap();
        let err = read(&path)
            .err()
            .expect("a damaged file must be refused")
            .to_string();
        assert!(
            err.contains("model.safetensors") && err.contains("layer.weight"),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn a_file_without_checksums_loads_unverified() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("export.safetensors");
        let bytes =
            safetensors::tensor::serialize(tensors().iter().map(|(n, t)| (n.as_str(), t)), &None)
                .unwrap();
        fs::write(&path, bytes).unwrap();
        let file = read(&path).unwrap();
        assert!(!file.checksummed);
        assert_eq!(file.tensors.len(), 2);
    }

    #[test]
    fn impossible_shapes_and_sizes_are_refused_before_allocation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("odd.safetensors");
        // A zero-element tensor whose other dimension no file could hold.
        let header =
            r#"{"t":{"dtype":"F32","shape":[0,4611686018427387904],"data_offsets":[0,0]}}"#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        fs::write(&path, &bytes).unwrap();
        let err = read(&path).err().unwrap().to_string();
        assert!(err.contains("tensor t has a dimension"), "{err}");
        // A header length far beyond the file.
        let mut bytes = u64::MAX.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"{}");
        fs::write(&path, &bytes).unwrap();
        let err = read(&path).err().unwrap().to_string();
        assert!(err.contains("odd.safetensors"), "{err}");
    }
}
