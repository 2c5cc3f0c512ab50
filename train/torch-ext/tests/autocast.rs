//! Autocast on CPU against real libtorch kernels.

use tch::{Device, Kind, Tensor};
use torch_ext::autocast::{self, AutocastGuard, DeviceType};
use torch_ext::Error;

fn conv_and_matmul() -> (Kind, Kind) {
    let x = Tensor::randn([2, 1, 8, 8, 8], (Kind::Float, Device::Cpu));
    let w = Tensor::randn([4, 1, 3, 3, 3], (Kind::Float, Device::Cpu));
    let conv = x.conv3d(&w, None::<Tensor>, [1, 1, 1], [1, 1, 1], [1, 1, 1], 1);
    let a = Tensor::randn([16, 32], (Kind::Float, Device::Cpu));
    let b = Tensor::randn([32, 8], (Kind::Float, Device::Cpu));
    (conv.kind(), a.matmul(&b).kind())
}

#[test]
fn bf16_inside_guard_fp32_after() {
    assert!(!autocast::is_enabled(DeviceType::Cpu).unwrap());
    assert_eq!(conv_and_matmul(), (Kind::Float, Kind::Float));
    {
        let _g = AutocastGuard::new(Device::Cpu, Kind::BFloat16).unwrap();
        assert!(autocast::is_enabled(DeviceType::Cpu).unwrap());
        assert_eq!(
            autocast::get_dtype(DeviceType::Cpu).unwrap(),
            Kind::BFloat16
        );
        assert_eq!(conv_and_matmul(), (Kind::BFloat16, Kind::BFloat16));
        // Ops outside autocast's lists keep the input dtype.
        let x = Tensor::randn([4], (Kind::Float, Device::Cpu));
        assert_eq!(x.relu().kind(), Kind::Float);
    }
    assert!(!autocast::is_enabled(DeviceType::Cpu).unwrap());
    assert_eq!(conv_and_matmul(), (Kind::Float, Kind::Float));
}

#[test]
fn nesting_and_disabled_regions() {
    let outer = AutocastGuard::new(Device::Cpu, Kind::BFloat16).unwrap();
    assert_eq!(conv_and_matmul().0, Kind::BFloat16);
    {
        let _off = AutocastGuard::disabled(Device::Cpu).unwrap();
        assert!(!autocast::is_enabled(DeviceType::Cpu).unwrap());
        assert_eq!(conv_and_matmul(), (Kind::Float, Kind::Float));
        {
            let _on = AutocastGuard::new(Device::Cpu, Kind::BFloat16).unwrap();
            assert_eq!(conv_and_matmul().1, Kind::BFloat16);
        }
        assert_eq!(conv_and_matmul().1, Kind::Float);
    }
    assert!(autocast::is_enabled(DeviceType::Cpu).unwrap());
    assert_eq!(conv_and_matmul().1, Kind::BFloat16);
    drop(outer);
    assert!(!autocast::is_enabled(DeviceType::Cpu).unwrap());
    assert_eq!(conv_and_matmul().1, Kind::Float);
}

#[test]
fn previous_state_is_restored() {
    autocast::set_dtype(DeviceType::Cpu, Kind::Half).unwrap();
    autocast::set_cache_enabled(false).unwrap();
    {
        let _g = AutocastGuard::new(Device::Cpu, Kind::BFloat16).unwrap();
        assert_eq!(
            autocast::get_dtype(DeviceType::Cpu).unwrap(),
            Kind::BFloat16
        );
    }
    assert_eq!(autocast::get_dtype(DeviceType::Cpu).unwrap(), Kind::Half);
    assert!(!autocast::is_cache_enabled().unwrap());
    assert!(!autocast::is_enabled(DeviceType::Cpu).unwrap());

    // Enabled-by-hand state survives a guard too.
    autocast::set_enabled(DeviceType::Cpu, true).unwrap();
    {
        let _off = AutocastGuard::disabled(Device::Cpu).unwrap();
        assert!(!autocast::is_enabled(DeviceType::Cpu).unwrap());
    }
    assert!(autocast::is_enabled(DeviceType::Cpu).unwrap());
    assert_eq!(conv_and_matmul().1, Kind::Half);

    autocast::set_enabled(DeviceType::Cpu, false).unwrap();
    autocast::set_dtype(DeviceType::Cpu, Kind::BFloat16).unwrap();
    autocast::set_cache_enabled(true).unwrap();
    autocast::clear_cache().unwrap();
}

#[test]
fn state_is_per_device_type() {
    let _g = AutocastGuard::new(Device::Cpu, Kind::BFloat16).unwrap();
    // Setting CUDA's flags needs no GPU: they are thread-local dispatch state.
    assert!(!autocast::is_enabled(DeviceType::Cuda).unwrap());
    assert_eq!(autocast::get_dtype(DeviceType::Cuda).unwrap(), Kind::Half);
}

#[test]
fn bad_arguments_are_errors() {
    assert!(matches!(
        AutocastGuard::new(Device::Cpu, Kind::Float),
        Err(Error::AutocastDtype(Kind::Float))
    ));
    assert!(matches!(
        autocast::set_dtype(DeviceType::Cpu, Kind::Double),
        Err(Error::AutocastDtype(Kind::Double))
    ));
    let err = autocast::set_enabled(DeviceType::Vulkan, true).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Torch(_)), "{msg}");
    assert!(msg.contains("autocast is not available"), "{msg}");
    assert!(AutocastGuard::new(Device::Vulkan, Kind::BFloat16).is_err());
    // A refused guard leaves nothing behind.
    assert!(!autocast::is_enabled(DeviceType::Cpu).unwrap());
}
