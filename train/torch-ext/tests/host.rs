//! Pinning without a device argument, storage sharing counts, the current
//! CUDA device and the fused unscale: CPU-side behaviour, and the GPU side
//! where this test binary (linked against libtorch_cuda) sees one.

use tch::{Device, Kind, Tensor};
use torch_ext::{
    cuda_current_device, non_finite_check_and_unscale_, pin_memory, set_cuda_device,
    storage_is_unshared,
};

#[test]
fn views_and_shallow_clones_share_the_storage() {
    let t = Tensor::zeros([4, 3], (Kind::Int16, Device::Cpu));
    assert!(storage_is_unshared(&t).unwrap());
    let view = t.narrow(0, 0, 2);
    assert!(!storage_is_unshared(&t).unwrap());
    // A shallow clone of the view holds the storage after the view is gone.
    let alias = view.shallow_clone();
    drop(view);
    assert!(!storage_is_unshared(&t).unwrap());
    drop(alias);
    assert!(storage_is_unshared(&t).unwrap());
    let alias = t.shallow_clone();
    assert!(!storage_is_unshared(&t).unwrap());
    drop(alias);
    // A copy has a storage of its own.
    let copy = t.copy();
    assert!(storage_is_unshared(&t).unwrap());
    assert!(storage_is_unshared(&copy).unwrap());
}

#[test]
fn pinning_needs_cuda_and_keeps_the_values() {
    let t = Tensor::arange(6, (Kind::Int16, Device::Cpu));
    match pin_memory(&t) {
        Ok(p) => {
            assert!(tch::Cuda::is_available(), "pinned without CUDA");
            assert!(p.is_pinned(Device::Cuda(0)) || p.is_pinned(Device::Cpu));
            assert!(p.equal(&t));
        }
        Err(e) => {
            assert!(!tch::Cuda::is_available(), "CUDA present, pin failed: {e}");
            assert!(!e.to_string().contains("frame #"), "{e}");
        }
    }
}

#[test]
fn the_current_device_is_settable_only_where_it_exists() {
    let count = tch::Cuda::device_count() as usize;
    assert!(set_cuda_device(count + 2).is_err());
    if count > 0 {
        let last = count - 1;
        set_cuda_device(last).unwrap();
        assert_eq!(cuda_current_device().unwrap(), last);
    } else {
        assert!(set_cuda_device(0).is_err());
    }
}

fn unscale_on(device: Device) {
    let opts = (Kind::Float, device);
    let grads = [
        Tensor::from_slice(&[2.0f32, -4.0]).to_device(device),
        Tensor::from_slice(&[8.0f32]).to_device(device),
    ];
    let inv = Tensor::from_slice(&[0.5f32]).to_device(device);
    let mut found = Tensor::zeros([1], opts);
    non_finite_check_and_unscale_(&grads, &mut found, &inv).unwrap();
    assert_eq!(Vec::<f32>::try_from(&grads[0]).unwrap(), vec![1.0, -2.0]);
    assert_eq!(Vec::<f32>::try_from(&grads[1]).unwrap(), vec![4.0]);
    assert_eq!(found.double_value(&[0]), 0.0);
    let bad = [Tensor::from_slice(&[1.0f32, f32::NAN]).to_device(device)];
    non_finite_check_and_unscale_(&bad, &mut found, &inv).unwrap();
    assert_eq!(found.double_value(&[0]), 1.0);
}

#[test]
fn the_fused_unscale_multiplies_and_flags_non_finite_values() {
    unscale_on(Device::Cpu);
    if tch::Cuda::is_available() {
        unscale_on(Device::Cuda(0));
    }
}
