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

/// A pinned host buffer copied on the side stream arrives whole, and work
/// the compute stream queues right after the call reads the copied values;
/// the event's wait means the buffer may be overwritten.
#[test]
fn a_side_stream_copy_is_seen_by_the_compute_stream() {
    if !tch::Cuda::is_available() {
        return;
    }
    let device = tch::Device::Cuda(0);
    let mut event = CudaEvent::new(0).unwrap();
    let values = tch::Tensor::arange(1 << 22, (tch::Kind::Float, tch::Device::Cpu));
    let host = torch_ext::pin_memory(&values).unwrap();
    let big = tch::Tensor::ones([4096, 4096], (tch::Kind::Float, device));
    for round in 0..3 {
        // Compute-stream work that is still running when the copy starts.
        let busy = big.matmul(&big);
        let on_device = event.copy_to_device(&host).unwrap();
        let sum = (&on_device + 1.0).sum(tch::Kind::Double);
        event.synchronize().unwrap();
        let _ = host.shallow_clone().fill_(-1.0);
        let n = (1u64 << 22) as f64;
        assert_eq!(
            sum.double_value(&[]),
            n * (n - 1.0) / 2.0 + n,
            "round {round}"
        );
        assert_eq!(busy.double_value(&[0, 0]), 4096.0);
        host.shallow_clone().copy_(&values);
    }
}
