//! The book's `.state` files (written here by the venv's torch in both of
//! torch.save's formats) read by `train::model::torch_state`, taken into
//! our models by `model::import`, written as `model.safetensors` and
//! loaded back: every tensor bit for bit, the same outputs as PyTorch's
//! module, and one clear error for each kind of bad file.

use std::collections::HashMap;
use std::path::Path;

use luna_e2e::book_state::{self, BookState};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};
use train::model::import::{self, BookModel, ImportError};
use train::model::torch_state::{self, Format, Scalar, TorchStateError};
use train::model::{UNet, UNetConfig};
use train::run::checkpoint::{self, Architecture};

/// The same `[2,7,64,64]` input in both languages: `sin(0.37 i) * 800`.
const UNET_OUTPUT_PY: &str = r#"
with torch.no_grad():
    y = m((torch.arange(2 * 7 * 64 * 64, dtype=torch.float32) * 0.37).sin().mul(800.0).view(2, 7, 64, 64))
printed["out"] = y.reshape(-1).tolist()
"#;

fn unet_input() -> Tensor {
    ((Tensor::arange(2 * 7 * 64 * 64, (Kind::Float, Device::Cpu)) * 0.37).sin() * 800.0)
        .view([2, 7, 64, 64])
}

fn reference(path: &Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(path)
        .unwrap()
        .into_iter()
        .collect()
}

fn assert_equal_to_reference(state: &torch_state::StateDict, reference: &HashMap<String, Tensor>) {
    assert_eq!(state.tensors.len(), reference.len(), "tensor count");
    for (name, tensor) in &state.tensors {
        let want = &reference[name];
        assert_eq!(tensor.kind(), want.kind(), "{name}: dtype");
        assert!(tensor.equal(want), "{name}: values differ");
    }
}

#[test]
fn a_book_unet_state_reads_bit_for_bit_in_both_formats_and_runs_as_pytorch_does() {
    let dir = tempfile::tempdir().unwrap();
    let files = book_state::write(dir.path(), "seg", "unet", 4, UNET_OUTPUT_PY);
    let reference = reference(&files.reference);
    for (path, format) in [(&files.legacy, Format::Legacy), (&files.zip, Format::Zip)] {
        let state = torch_state::read(path).unwrap();
        assert_eq!(state.format, format);
        assert!(state.nested, "the dict is the checkpoint's model_state");
        assert_eq!(state.scalars["epoch"], Scalar::Int(3));
        assert_eq!(
            state.scalars["model_name"],
            Scalar::Str("UNetWrapper".into())
        );
        assert_eq!(
            state.scalars["totalTrainingSamples_count"],
            Scalar::Int(1234)
        );
        assert_equal_to_reference(&state, &reference);

        let imported = import::import(&state).unwrap();
        assert_eq!(imported.model, BookModel::UNet);
        assert_eq!(imported.bn_steps, 2, "two training steps");
        let out = tempfile::tempdir().unwrap();
        let arch = Architecture::unet(&UNetConfig::default()).unwrap();
        checkpoint::write_model(
            out.path(),
            &imported.vs,
            imported.bn_steps,
            &arch,
            None,
            None,
        )
        .unwrap();
        assert_same_outputs_as_pytorch(out.path(), &files);
    }
}

/// A U-Net built as training builds it, loaded from the written file as
/// `eval` loads a checkpoint, gives PyTorch's eval-mode output.
fn assert_same_outputs_as_pytorch(ckpt: &Path, files: &BookState) {
    let mut vs = VarStore::new(Device::Cpu);
    let model = UNet::new(&vs.root(), &UNetConfig::default());
    let info = checkpoint::load_weights(ckpt, &mut vs).unwrap();
    assert!(info.checksummed);
    let ours = tch::no_grad(|| model.forward_t(&unet_input(), false));
    let ours = Vec::<f32>::try_from(ours.flatten(0, -1)).unwrap();
    let theirs: Vec<f64> = serde_json::from_value(files.printed["out"].clone()).unwrap();
    assert_eq!(ours.len(), theirs.len());
    let d = ours
        .iter()
        .zip(&theirs)
        .map(|(&a, b)| (f64::from(a) - b).abs())
        .fold(0.0, f64::max);
    assert!(d < 1e-5, "outputs differ by {d}");
}

#[test]
fn a_book_classifier_state_imports_as_luna_model() {
    let dir = tempfile::tempdir().unwrap();
    let files = book_state::write(dir.path(), "cls", "luna", 4, "");
    let state = torch_state::read(&files.legacy).unwrap();
    assert_equal_to_reference(&state, &reference(&files.reference));
    let imported = import::import(&state).unwrap();
    assert_eq!(imported.model, BookModel::Luna);
    let vars = imported.vs.variables();
    let want = reference(&files.reference);
    assert_eq!(vars.len() + 1, want.len(), "all but num_batches_tracked");
    for (name, var) in &vars {
        assert!(var.equal(&want[name]), "{name}");
    }
}

/// Views of one storage (a transpose, an offset slice) and dtypes other
/// than float32, as a bare state dict: strides, offsets and element sizes.
#[test]
fn views_and_dtypes_of_a_bare_dict_read_as_torch_wrote_them() {
    let dir = tempfile::tempdir().unwrap();
    let stem = dir.path().join("views");
    let script = r#"
import sys, torch
from safetensors.torch import save_file
base = torch.arange(24, dtype=torch.float64).view(4, 6)
d = {"t": base.t(), "s": base[1:3, 2:5], "h": torch.arange(5, dtype=torch.float16) / 3,
     "i": torch.arange(3) - 1, "e": torch.zeros(0, 4), "scalar": torch.tensor(2.5)}
torch.save(d, sys.argv[1] + ".legacy.state", _use_new_zipfile_serialization=False)
torch.save(d, sys.argv[1] + ".zip.state")
save_file({k: v.contiguous() for k, v in d.items()}, sys.argv[1] + ".reference.safetensors")
"#;
    luna_e2e::python::python_stdout(script, &[stem.as_os_str()], |_| {});
    let reference = reference(&dir.path().join("views.reference.safetensors"));
    for ext in ["legacy", "zip"] {
        let state = torch_state::read(&dir.path().join(format!("views.{ext}.state"))).unwrap();
        assert!(!state.nested);
        let names: Vec<&str> = state.tensors.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["t", "s", "h", "i", "e", "scalar"],
            "the dict's order"
        );
        assert_equal_to_reference(&state, &reference);
    }
}

#[test]
fn a_unet_of_another_width_is_refused_naming_its_first_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let files = book_state::write(dir.path(), "wide", "unet", 5, "");
    let state = torch_state::read(&files.zip).unwrap();
    let err = import::import(&state).unwrap_err();
    assert!(matches!(err, ImportError::Shape { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: tensor \"unet.down_path.0.block.0.weight\" is [32, 7, 3, 3], the book's U-Net (UNetWrapper, depth 3, wf 4) expects [16, 7, 3, 3]",
            files.zip.display()
        )
    );
}

#[test]
fn missing_unexpected_and_foreign_tensors_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let stem = dir.path().join("odd");
    let script = r#"
import sys, torch
from luna_model import LunaModel
sd = LunaModel().state_dict()
missing = dict(sd); del missing["head_linear.bias"]
extra = dict(sd); extra["block1.conv3.weight"] = torch.zeros(2)
foreign = {"encoder.weight": torch.zeros(2)}
for name, d in [("missing", missing), ("extra", extra), ("foreign", foreign)]:
    torch.save({"model_state": d, "epoch": 1}, sys.argv[1] + "." + name)
"#;
    let env = |cmd: &mut std::process::Command| {
        cmd.env("PYTHONPATH", luna_e2e::python::scripts_dir());
    };
    luna_e2e::python::python_stdout(script, &[stem.as_os_str()], env);
    let err = |name: &str| {
        let state = torch_state::read(&dir.path().join(format!("odd.{name}"))).unwrap();
        import::import(&state).unwrap_err().to_string()
    };
    assert!(
        err("missing")
            .ends_with("no tensor \"head_linear.bias\", which the book's LunaModel needs"),
        "{}",
        err("missing")
    );
    assert!(
        err("extra")
            .ends_with("tensor \"block1.conv3.weight\" is not part of the book's LunaModel"),
        "{}",
        err("extra")
    );
    assert!(
        err("foreign").ends_with(
            "tensor \"encoder.weight\" belongs to neither the book's LunaModel nor its U-Net"
        ),
        "{}",
        err("foreign")
    );
}

#[test]
fn random_bytes_and_every_truncation_are_refused_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let noise = dir.path().join("noise.state");
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    std::fs::write(&noise, &bytes).unwrap();
    let err = torch_state::read(&noise).unwrap_err();
    assert!(matches!(err, TorchStateError::NotTorch { .. }), "{err:?}");
    assert!(err.to_string().contains("not a torch.save file"), "{err}");

    let files = book_state::write(dir.path(), "cut", "unet", 4, "");
    for whole in [&files.legacy, &files.zip] {
        let data = std::fs::read(whole).unwrap();
        let cut = dir.path().join("cut.state");
        // Every prefix a few hundred bytes apart, and the last byte off.
        let lengths = (0..data.len())
            .step_by(data.len() / 40)
            .chain([data.len() - 1]);
        for len in lengths {
            std::fs::write(&cut, &data[..len]).unwrap();
            let err = torch_state::read(&cut).unwrap_err();
            let text = err.to_string();
            assert!(text.starts_with(&cut.display().to_string()), "{text}");
            if len > 16 {
                assert!(
                    matches!(err, TorchStateError::Truncated { .. }),
                    "{} bytes of {}: {err:?}",
                    len,
                    whole.display()
                );
            }
        }
    }
}
