//! CUDA events: usable on a GPU, a clear error (never an abort) without one.

use torch_ext::CudaEvent;

#[test]
fn an_event_waits_on_a_gpu_and_is_an_error_without_one() {
    if tch::Cuda::is_available() {
        let mut event = CudaEvent::new(0).unwrap();
        // Never recorded: returns at once.
        event.synchronize().unwrap();
        let x = tch::Tensor::ones([1 << 20], (tch::Kind::Float, tch::Device::Cuda(0)));
        let y = &x * 2.0;
        event.record().unwrap();
        event.synchronize().unwrap();
        assert_eq!(y.double_value(&[0]), 2.0);
    } else {
        let err = CudaEvent::new(0)
            .err()
            .expect("no GPU, yet an event was made");
        assert!(!err.to_string().contains("frame #"), "{err}");
    }
    let count = tch::Cuda::device_count() as usize;
    assert!(
        CudaEvent::new(count + 3).is_err(),
        "device {} does not exist",
        count + 3
    );
}
