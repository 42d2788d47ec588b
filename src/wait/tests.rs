use super::*;
use crate::sync::fence;
use std::sync::Arc;

mod stress;

#[test]
fn times_out_when_nothing_happens() {
    let pair = FutexPair::default();
    let parker = Parker::new(&pair);
    let waiters = &pair.waiters;
    for strategy in [Wait::Spin, Wait::Adaptive, Wait::Block] {
        let deadline = Instant::now() + Duration::from_millis(20);
        let r: Option<()> = wait_for(
            strategy,
            Some(deadline),
            parker,
            &mut Tick::default(),
            |_| None,
        );
        assert!(r.is_none());
        assert!(Instant::now() >= deadline);
        assert_eq!(waiters.load(Ordering::Relaxed) & WAITER_COUNT, 0);
    }
}

#[test]
fn a_parked_waiter_is_woken() {
    struct Shared {
        flag: AtomicU32,
        pair: FutexPair,
    }
    let shared = Arc::new(Shared {
        flag: AtomicU32::new(0),
        pair: FutexPair::default(),
    });
    let s2 = Arc::clone(&shared);
    let waiter = std::thread::spawn(move || {
        let parker = Parker::new(&s2.pair);
        let deadline = Instant::now() + Duration::from_secs(30);
        wait_for(
            Wait::Block,
            Some(deadline),
            parker,
            &mut Tick::default(),
            |_| (s2.flag.load(Ordering::Acquire) == 1).then_some(()),
        )
    });
    // Wait until the waiter is registered, then make progress and notify.
    while shared.pair.waiters.load(Ordering::Relaxed) == 0 {
        std::thread::yield_now();
    }
    shared.flag.store(1, Ordering::Release);
    fence(Ordering::SeqCst);
    wake_if_parked(&shared.pair);
    assert_eq!(waiter.join().expect("waiter"), Some(()));
}
