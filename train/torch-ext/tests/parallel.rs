//! `parallel_for` covers its range once, on libtorch's threads, and hands a
//! panic back to the caller instead of unwinding through C++.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use torch_ext::parallel_for;

#[test]
fn chunks_cover_the_range_once_on_more_than_one_thread() {
    tch::set_num_threads(2);
    let n = 10_000;
    let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
    let threads = Mutex::new(HashSet::new());
    let chunks = Mutex::new(Vec::<Range<usize>>::new());
    parallel_for(0..n, 100, |chunk| {
        threads.lock().unwrap().insert(std::thread::current().id());
        chunks.lock().unwrap().push(chunk.clone());
        for i in chunk {
            hits[i].fetch_add(1, Ordering::Relaxed);
            // Long enough that both threads get work.
            std::hint::black_box((0..200).sum::<usize>());
        }
    })
    .unwrap();
    assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
    let chunks = chunks.into_inner().unwrap();
    assert!(
        chunks.iter().all(|c| c.len() >= 100 || c.end == n),
        "{chunks:?}"
    );
    if std::thread::available_parallelism().map_or(1, |p| p.get()) > 1 {
        assert!(threads.into_inner().unwrap().len() > 1, "ran on one thread");
    }
    // An empty range calls nothing.
    parallel_for(5..5, 1, |_| panic!("called for an empty range")).unwrap();
}

#[test]
fn a_panic_in_the_body_reaches_the_caller() {
    let caught = std::panic::catch_unwind(|| {
        parallel_for(0..64, 1, |chunk| {
            if chunk.contains(&13) {
                panic!("chunk with 13");
            }
        })
    });
    let payload = caught.expect_err("the panic was lost");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"chunk with 13"));
}
