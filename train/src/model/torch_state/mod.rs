//! Reads the weights out of a `torch.save` file, such as the book's
//! `*.best.state` checkpoints (`{'model_state': model.state_dict(),
//! 'epoch': …, …}`) or a bare `state_dict`, in either container torch
//! writes ([`container`]). Nothing in the file is executed: the pickle is
//! read by a restricted interpreter ([`pickle`]) and only
//! `torch._utils._rebuild_tensor_v2` (and `_rebuild_parameter` around it)
//! over a `torch.*Storage` is turned into a tensor.

mod container;
pub mod pickle;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use tch::Tensor;

pub use container::Format;
use container::{storage_ref, Container, ContainerError};
use pickle::{Id, Pickle, Value};

/// The checkpoint entry the book keeps the model's `state_dict` under.
pub const MODEL_STATE_KEY: &str = "model_state";
/// No checkpoint of these models comes near this; a larger file is refused
/// before it is read into memory.
const MAX_FILE_BYTES: u64 = 8 << 30;
/// Deeper nesting than any state dict has: a cyclic or hostile pickle.
const MAX_DEPTH: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum TorchStateError {
    // `error`, not `source`: the message already holds the cause, and
    // anyhow's `{:#}` would print a `source` a second time.
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: not a torch.save file ({why})")]
    NotTorch { path: PathBuf, why: String },
    #[error("{path}: truncated or damaged: {what}")]
    Truncated { path: PathBuf, what: String },
    #[error("{path}: {what}: {error}")]
    Pickle {
        path: PathBuf,
        what: &'static str,
        error: pickle::PickleError,
    },
    #[error("{path}: {reason}")]
    Layout { path: PathBuf, reason: String },
}

/// A scalar entry of a checkpoint dict (`epoch`, `model_name`, …).
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    Int(i128),
    Float(f64),
    Str(String),
    Bool(bool),
}

impl std::fmt::Display for Scalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scalar::Int(i) => write!(f, "{i}"),
            Scalar::Float(x) => write!(f, "{x}"),
            Scalar::Str(s) => write!(f, "{s}"),
            Scalar::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// The named tensors of a file's state dict.
#[derive(Debug)]
pub struct StateDict {
    pub path: PathBuf,
    pub format: Format,
    /// In the file's order (a `state_dict`'s is its module's), on the CPU,
    /// contiguous, of the dtype stored.
    pub tensors: Vec<(String, Tensor)>,
    /// Whether the dict was the `model_state` entry of a checkpoint dict
    /// (else the file's root object was the state dict).
    pub nested: bool,
    /// The checkpoint dict's scalar entries (none for a bare state dict).
    pub scalars: BTreeMap<String, Scalar>,
}

/// Reads the state dict of the `torch.save` file `path`.
pub fn read(path: &Path) -> Result<StateDict, TorchStateError> {
    let io = |error| TorchStateError::Io {
        path: path.to_owned(),
        error,
    };
    let len = fs::metadata(path).map_err(io)?.len();
    if len > MAX_FILE_BYTES {
        return Err(TorchStateError::Layout {
            path: path.to_owned(),
            reason: format!("{len} bytes, more than a model's weights take ({MAX_FILE_BYTES})"),
        });
    }
    let data = fs::read(path).map_err(io)?;
    let mut state = read_bytes(&data).map_err(|e| with_path(path, e))?;
    state.path = path.to_owned();
    Ok(state)
}

fn with_path(path: &Path, e: ContainerError) -> TorchStateError {
    let path = path.to_owned();
    match e {
        ContainerError::NotTorch(why) => TorchStateError::NotTorch { path, why },
        ContainerError::Truncated(what) => TorchStateError::Truncated { path, what },
        ContainerError::Pickle(what, error) => TorchStateError::Pickle { path, what, error },
        ContainerError::Layout(reason) => TorchStateError::Layout { path, reason },
    }
}

/// What [`read`] does once the file is in memory; the path is added by it.
fn read_bytes(data: &[u8]) -> Result<StateDict, ContainerError> {
    let mut container = Container::open(data)?;
    let (dict, nested) = find_state_dict(&container.pickle)?;
    let scalars = if nested {
        scalars(&container.pickle, container.pickle.root)
    } else {
        BTreeMap::new()
    };
    let mut tensors = Vec::with_capacity(dict.len());
    for (name, value) in dict {
        let tensor = rebuild(&mut container, value, 0)
            .map_err(|why| ContainerError::Layout(format!("entry {name:?}: {why}")))?;
        tensors.push((name, tensor));
    }
    Ok(StateDict {
        path: PathBuf::new(),
        format: container.format,
        tensors,
        nested,
        scalars,
    })
}

/// The dict's string-keyed items, or `None` when it is not such a dict.
fn string_items(pickle: &Pickle, id: Id) -> Option<Vec<(String, Id)>> {
    let Value::Dict(items) = pickle.get(id) else {
        return None;
    };
    items
        .iter()
        .map(|&(k, v)| pickle.str(k).map(|k| (k.to_owned(), v)))
        .collect()
}

/// `root['model_state']` when the root is a checkpoint dict, else the root.
fn find_state_dict(pickle: &Pickle) -> Result<(Vec<(String, Id)>, bool), ContainerError> {
    let not_found = || {
        ContainerError::Layout(format!(
            "holds neither a {MODEL_STATE_KEY:?} entry nor a state dict of named tensors"
        ))
    };
    let root = string_items(pickle, pickle.root).ok_or_else(not_found)?;
    match root.iter().find(|(k, _)| k == MODEL_STATE_KEY) {
        Some(&(_, id)) => string_items(pickle, id)
            .map(|items| (items, true))
            .ok_or_else(|| ContainerError::Layout(format!("{MODEL_STATE_KEY:?} is not a dict"))),
        None if root.iter().all(|&(_, v)| is_tensor(pickle, v)) && !root.is_empty() => {
            Ok((root, false))
        }
        None => Err(not_found()),
    }
}

fn scalars(pickle: &Pickle, root: Id) -> BTreeMap<String, Scalar> {
    string_items(pickle, root)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| {
            let scalar = match pickle.get(v) {
                Value::Int(i) => Scalar::Int(*i),
                Value::Float(x) => Scalar::Float(*x),
                Value::Str(s) => Scalar::Str(s.clone()),
                Value::Bool(b) => Scalar::Bool(*b),
                _ => return None,
            };
            Some((k, scalar))
        })
        .collect()
}

/// The callable's `(module, name)` when `id` is a call of a global.
fn call_of(pickle: &Pickle, id: Id) -> Option<(&str, &str, &[Id])> {
    let Value::Call { callable, args, .. } = pickle.get(id) else {
        return None;
    };
    let (Value::Global { module, name }, Value::Tuple(args)) =
        (pickle.get(*callable), pickle.get(*args))
    else {
        return None;
    };
    Some((module, name, args))
}

fn is_tensor(pickle: &Pickle, id: Id) -> bool {
    matches!(
        call_of(pickle, id),
        Some((
            "torch._utils",
            "_rebuild_tensor_v2" | "_rebuild_parameter",
            _
        ))
    )
}

/// The tensor `id` describes, read from its storage.
fn rebuild(container: &mut Container<'_>, id: Id, depth: usize) -> Result<Tensor, String> {
    let pickle = &container.pickle;
    let Some((module, name, args)) = call_of(pickle, id) else {
        return Err(format!("{:?} is not a tensor", short(pickle.get(id))));
    };
    match (module, name) {
        // `Parameter(tensor, requires_grad, hooks)`: the tensor is the data.
        ("torch._utils", "_rebuild_parameter") if depth < MAX_DEPTH && !args.is_empty() => {
            let inner = args[0];
            rebuild(container, inner, depth + 1)
        }
        ("torch._utils", "_rebuild_tensor_v2") if args.len() >= 4 => {
            let layout = TensorLayout::of(pickle, args)?;
            let bytes = container
                .storage(&layout.storage.key)
                .map_err(|e| match e {
                    ContainerError::Layout(r)
                    | ContainerError::Truncated(r)
                    | ContainerError::NotTorch(r) => r,
                    ContainerError::Pickle(w, e) => format!("{w}: {e}"),
                })?;
            layout.tensor(&bytes)
        }
        _ => Err(format!(
            "{module}.{name}(…) is not a tensor this reader builds"
        )),
    }
}

/// What a `_rebuild_tensor_v2(storage, offset, size, stride, …)` says.
struct TensorLayout {
    storage: container::StorageRef,
    offset: i64,
    size: Vec<i64>,
    stride: Vec<i64>,
}

impl TensorLayout {
    fn of(pickle: &Pickle, args: &[Id]) -> Result<Self, String> {
        let Value::Persistent(pid) = pickle.get(args[0]) else {
            return Err("a tensor whose storage is not a persistent id".into());
        };
        let storage = storage_ref(pickle, *pid)?;
        let ints = |id: Id| -> Result<Vec<i64>, String> {
            let Value::Tuple(items) = pickle.get(id) else {
                return Err("a tensor size or stride that is not a tuple".into());
            };
            items
                .iter()
                .map(|&i| {
                    pickle
                        .int(i)
                        .and_then(|i| i64::try_from(i).ok())
                        .filter(|&i| i >= 0)
                        .ok_or_else(|| "a negative or huge size or stride".to_owned())
                })
                .collect()
        };
        let offset = pickle
            .int(args[1])
            .and_then(|i| i64::try_from(i).ok())
            .filter(|&i| i >= 0)
            .ok_or("a storage offset that is not a count")?;
        let (size, stride) = (ints(args[2])?, ints(args[3])?);
        if size.len() != stride.len() {
            return Err(format!(
                "size {size:?} and stride {stride:?} of different ranks"
            ));
        }
        Ok(TensorLayout {
            storage,
            offset,
            size,
            stride,
        })
    }

    /// Checks the view stays inside the storage, then copies it out.
    fn tensor(&self, bytes: &[u8]) -> Result<Tensor, String> {
        let kind = self.storage.kind;
        let numel = (bytes.len() / kind.elt_size_in_bytes()) as i64;
        if i128::from(numel) < self.storage.numel {
            return Err(format!(
                "storage {:?} holds {numel} elements, its id says {}",
                self.storage.key, self.storage.numel
            ));
        }
        let empty = self.size.contains(&0);
        let last = self
            .size
            .iter()
            .zip(&self.stride)
            .try_fold(self.offset, |acc, (&n, &s)| {
                (n.max(1) - 1)
                    .checked_mul(s)
                    .and_then(|d| acc.checked_add(d))
            });
        if !empty && last.is_none_or(|last| last >= numel) {
            return Err(format!(
                "size {:?}, stride {:?} at offset {} reach past the {numel} elements of storage {:?}",
                self.size, self.stride, self.offset, self.storage.key
            ));
        }
        let used = &bytes[..numel as usize * kind.elt_size_in_bytes()];
        let flat = Tensor::f_from_data_size(used, &[numel], kind).map_err(|e| e.to_string())?;
        Ok(flat
            .as_strided(self.size.as_slice(), self.stride.as_slice(), self.offset)
            .contiguous())
    }
}

/// A value for an error message, cut short.
fn short(v: &Value) -> String {
    let mut text = format!("{v:?}");
    if text.len() > 60 {
        text.truncate(60);
        text.push('…');
    }
    text
}
