//! `shmchan::raw`: opening with an explicit layout (checked like a typed open),
//! `inspect`, and buffers of the wrong length. The cross-process matrix of raw and
//! typed ends is in `tests/batch.rs`.

mod common;

use std::io;
use std::time::Duration;

use common::{unique_name, Rec};
use shmchan::raw::{self, RawError, RecordLayout};
use shmchan::stats::{Family, Observer};
use shmchan::{
    Channel, Mode, OpenError, Overflow, RecvError, RecvTimeoutError, Route, SendTimeoutError,
    TryRecvError, TrySendError,
};

const TIMEOUT: Duration = Duration::from_millis(1);

fn mismatch(
    result: Result<impl std::fmt::Debug, OpenError>,
) -> (&'static str, String, String, String) {
    match result {
        Err(e @ OpenError::Mismatch { .. }) => {
            let message = e.to_string();
            let OpenError::Mismatch {
                field,
                expected,
                found,
                ..
            } = e
            else {
                unreachable!()
            };
            (field, expected, found, message)
        }
        other => panic!("expected a mismatch, got {other:?}"),
    }
}

#[test]
fn a_raw_open_with_another_size_alignment_or_schema_is_refused_naming_both_sides() {
    let name = unique_name("raw-mismatch");
    let _tx = Route::<Rec>::sender(&name).expect("typed sender");
    let size = size_of::<Rec>();

    let bigger = RecordLayout::new(size + 8, 8, "Rec").expect("layout");
    let (field, expected, found, message) = mismatch(raw::route(&name, bigger).receiver());
    assert_eq!(field, "record size");
    assert_eq!(
        (expected, found),
        ((size + 8).to_string(), size.to_string())
    );
    assert!(message.contains("record size"), "{message}");

    let aligned = RecordLayout::new(size, 16, "Rec").expect("layout");
    let (field, expected, found, _) = mismatch(raw::route(&name, aligned).receiver());
    assert_eq!(field, "record alignment");
    assert_eq!((expected.as_str(), found.as_str()), ("16", "8"));

    let renamed = RecordLayout::new(size, 8, "Quote").expect("layout");
    let (field, expected, found, message) = mismatch(raw::route(&name, renamed).receiver());
    assert_eq!(field, "type name");
    assert!(
        expected.contains("Quote") && found.contains("Rec"),
        "{message}"
    );

    // The schema can also be set on the builder, as for a typed open.
    let renamed = RecordLayout::new(size, 8, "Quote").expect("layout");
    raw::route(&name, renamed)
        .schema("Rec")
        .receiver()
        .expect("the builder's schema wins");

    // The family and the options are checked as well.
    let (field, ..) = mismatch(raw::channel(&name, RecordLayout::of::<Rec>()).receiver());
    assert_eq!(field, "family");
    let (field, ..) = mismatch(
        raw::route(&name, RecordLayout::of::<Rec>())
            .capacity(8)
            .receiver(),
    );
    assert_eq!(field, "capacity");
    drop(_tx);
    let _ = Route::<Rec>::remove(&name);
}

#[test]
fn a_typed_open_is_refused_by_a_raw_segment_of_another_layout() {
    let name = unique_name("raw-made");
    let layout = RecordLayout::new(24, 8, "Tick").expect("layout");
    let _rx = raw::channel(&name, layout)
        .mode(Mode::Unicast)
        .receiver()
        .expect("raw receiver");
    let (field, expected, found, _) = mismatch(
        Channel::<[u64; 2]>::builder(&name)
            .mode(Mode::Unicast)
            .schema("Tick")
            .sender(),
    );
    assert_eq!(
        (field, expected.as_str(), found.as_str()),
        ("record size", "16", "24")
    );
    #[repr(C)]
    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    struct Tick([u64; 3]);
    let mut tx = Channel::<Tick>::builder(&name)
        .mode(Mode::Unicast)
        .sender()
        .expect("a type of the same layout and name opens");
    tx.send(Tick([1, 2, 3])).expect("send");
    let mut rx = _rx;
    let mut buf = [0u8; 24];
    rx.recv_into_timeout(&mut buf, Duration::from_secs(5))
        .expect("receive");
    assert_eq!(buf, *bytemuck::bytes_of(&Tick([1, 2, 3])));
    drop((tx, rx));
    let _ = Route::<Tick>::remove(&name);
}

#[test]
fn record_layouts_are_validated() {
    let option = |r: Result<RecordLayout, OpenError>| match r {
        Err(OpenError::InvalidOption { option, reason }) => (option, reason),
        other => panic!("expected InvalidOption, got {other:?}"),
    };
    assert!(option(RecordLayout::new(0, 1, "Z")).1.contains("size of 0"));
    assert!(option(RecordLayout::new(8, 3, "Z"))
        .1
        .contains("power of two"));
    assert!(option(RecordLayout::new(8, 8192, "Z"))
        .1
        .contains("power of two"));
    let (opt, reason) = option(RecordLayout::new(12, 8, "Z"));
    assert_eq!(opt, "layout");
    assert!(reason.contains("multiple of the alignment"), "{reason}");
    assert!(option(RecordLayout::new(8, 8, "")).1.contains("schema"));
    assert!(option(RecordLayout::new(8, 8, &"x".repeat(129)))
        .1
        .contains("schema"));
    let ok = RecordLayout::new(3, 1, "Rgb").expect("3 bytes, align 1");
    assert_eq!((ok.size(), ok.align(), ok.schema()), (3, 1, "Rgb"));
    assert_eq!(ok.to_string(), "Rgb (3 bytes, align 1)");
    assert_eq!(
        RecordLayout::of::<u16>(),
        RecordLayout::new(2, 2, "u16").expect("u16")
    );
}

#[test]
fn buffers_of_the_wrong_length_are_errors_and_consume_nothing() {
    let name = unique_name("raw-length");
    let layout = RecordLayout::new(12, 4, "Triple").expect("layout");
    let builder = raw::route(&name, layout)
        .capacity(4)
        .overflow(Overflow::Block);
    let mut tx = builder.clone().sender().expect("sender");
    let mut rx = builder.receiver().expect("receiver");
    macro_rules! one {
        ($len:expr, $whole:expr) => {
            RawError::Length {
                len: $len,
                record_size: 12,
                whole: $whole,
            }
        };
    }

    // Sends: exactly one record, or a whole number of them.
    assert_eq!(tx.send_bytes(&[0; 11]), Err(one!(11, false)));
    assert_eq!(tx.try_send_bytes(&[0; 13]), Err(one!(13, false)));
    assert_eq!(tx.send_bytes_timeout(&[], TIMEOUT), Err(one!(0, false)));
    assert_eq!(tx.send_many_bytes(&[0; 18]), Err(one!(18, true)));
    assert_eq!(tx.try_send_many_bytes(&[0; 1]), Err(one!(1, true)));
    assert_eq!(
        tx.send_many_bytes_timeout(&[0; 25], TIMEOUT),
        Err(one!(25, true))
    );
    assert_eq!(tx.next_seq(), 0, "a refused buffer sends nothing");
    assert_eq!(tx.send_many_bytes(&[]), Ok(0));

    let records: Vec<u8> = (0..36).collect();
    assert_eq!(tx.send_many_bytes(&records), Ok(3));

    // Receives: the same rules, and a refused call takes nothing.
    let mut big = [0u8; 64];
    assert_eq!(rx.recv_into(&mut big[..13]), Err(one!(13, false)));
    assert_eq!(rx.try_recv_into(&mut big[..0]), Err(one!(0, false)));
    assert_eq!(
        rx.recv_into_timeout(&mut big[..4], TIMEOUT),
        Err(one!(4, false))
    );
    assert_eq!(rx.recv_many_into(&mut big[..30]), Err(one!(30, true)));
    assert_eq!(rx.try_recv_many_into(&mut big[..5]), Err(one!(5, true)));
    assert_eq!(
        rx.recv_many_into_timeout(&mut big[..64], TIMEOUT),
        Err(one!(64, true))
    );
    assert_eq!(rx.next_seq(), 0, "a refused buffer takes nothing");
    assert_eq!(rx.try_recv_many_into(&mut []), Ok(0));

    let mut first = [0u8; 12];
    rx.recv_into(&mut first).expect("first record");
    assert_eq!(first.as_slice(), &records[..12]);
    assert_eq!(rx.try_recv_many_into(&mut big[..48]), Ok(2));
    assert_eq!(&big[..24], &records[12..]);
    assert_eq!(
        rx.try_recv_into(&mut first),
        Err(RawError::Channel(TryRecvError::Empty))
    );
    let e = rx.recv_into(&mut big[..1]).expect_err("length");
    assert!(e.is_length() && e.channel().is_none());
    assert_eq!(
        e.to_string(),
        "buffer of 1 bytes does not hold one record of 12 bytes"
    );

    // Full, timeouts and disconnection come through unchanged.
    assert_eq!(tx.try_send_many_bytes(&[7; 60]), Ok(4));
    assert_eq!(
        tx.try_send_bytes(&[7; 12]),
        Err(RawError::Channel(TrySendError::Full(())))
    );
    assert_eq!(
        tx.send_bytes_timeout(&[7; 12], TIMEOUT),
        Err(RawError::Channel(SendTimeoutError::Timeout(())))
    );
    assert_eq!(
        tx.send_many_bytes_timeout(&[7; 24], TIMEOUT),
        Err(RawError::Channel(SendTimeoutError::Timeout(0)))
    );
    drop(tx);
    assert_eq!(rx.recv_many_into(&mut big[..48]), Ok(4));
    assert_eq!(
        rx.recv_into(&mut first),
        Err(RawError::Channel(RecvError::Disconnected))
    );
    assert_eq!(
        rx.recv_many_into_timeout(&mut big[..12], TIMEOUT),
        Err(RawError::Channel(RecvTimeoutError::Disconnected))
    );
    drop(rx);
    let _ = Route::<[u8; 12]>::remove(&name);
}

#[test]
fn inspect_reads_the_header_without_joining() {
    let name = unique_name("raw-inspect");
    let missing = raw::inspect(&name).expect_err("no segment yet");
    assert!(
        matches!(&missing, OpenError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound),
        "{missing:?}"
    );
    assert!(matches!(
        raw::inspect("a/b"),
        Err(OpenError::InvalidName { .. })
    ));

    let _rx = Channel::<Rec>::builder(&name)
        .capacity(32)
        .mode(Mode::Unicast)
        .max_receivers(3)
        .max_producers(5)
        .receiver()
        .expect("receiver");
    let info = raw::inspect(&name).expect("inspect");
    assert_eq!(
        (info.family, info.mode, info.overflow, info.capacity),
        (Family::Channel, Mode::Unicast, Overflow::Block, 32)
    );
    assert_eq!((info.max_receivers, info.max_producers), (3, 5));
    assert_eq!(info.layout(), RecordLayout::of::<Rec>());
    assert_eq!(raw::inspect_path(&info.path).expect("by path"), info);
    // Inspecting took no receiver entry: the table still has room for 2 more.
    let stats = Observer::open(&name)
        .expect("observer")
        .stats()
        .expect("stats");
    assert_eq!(stats.live_receivers(), 1);
    let _b = Channel::<Rec>::builder(&name)
        .capacity(32)
        .mode(Mode::Unicast)
        .max_receivers(3)
        .max_producers(5)
        .receiver()
        .expect("second");
    // Everything an opener needs is in the header: the table sizes too.
    let _c = raw::channel(&name, info.layout())
        .capacity(32)
        .mode(Mode::Unicast)
        .max_receivers(info.max_receivers)
        .max_producers(info.max_producers)
        .receiver()
        .expect("third, raw");
    drop((_rx, _b, _c));
    let _ = Route::<Rec>::remove(&name);

    // A Route has one producer and no producer table.
    let route = unique_name("raw-inspect-route");
    let _r = Route::<Rec>::builder(&route).receiver().expect("route");
    let info = raw::inspect(&route).expect("inspect route");
    assert_eq!((info.family, info.max_producers), (Family::Route, 0));
    drop(_r);
    let _ = Route::<Rec>::remove(&route);
}

#[test]
fn typed_ends_become_raw_ones_on_the_same_entry() {
    let name = unique_name("raw-into");
    let builder = Route::<u32>::builder(&name).overflow(Overflow::Block);
    let mut tx = builder.clone().sender().expect("sender");
    let rx = builder.receiver().expect("receiver");
    tx.send(5).expect("send");
    let mut raw_rx = rx.into_raw();
    let mut raw_tx = tx.into_raw();
    assert_eq!(raw_tx.layout(), &RecordLayout::of::<u32>());
    raw_tx.send_bytes(&6u32.to_ne_bytes()).expect("raw send");
    let mut buf = [0u8; 8];
    assert_eq!(raw_rx.recv_many_into(&mut buf), Ok(2));
    assert_eq!(buf, *bytemuck::bytes_of(&[5u32, 6]));
    // Still the only sender of the Route: a second one is refused.
    assert!(matches!(
        Route::<u32>::builder(&name)
            .overflow(Overflow::Block)
            .sender(),
        Err(OpenError::SenderExists { .. })
    ));
    drop(raw_tx);
    assert_eq!(
        raw_rx.recv_into(&mut buf[..4]),
        Err(RawError::Channel(RecvError::Disconnected))
    );
    assert_eq!(
        raw::inspect(&name).expect("inspect").layout(),
        RecordLayout::of::<u32>()
    );
    drop(raw_rx);
    let _ = Route::<u32>::remove(&name);
}

/// `RawSender::publish_gap` through the public API, every family and mode: each
/// receiver reports the gap once as `Lagged(n)` (in unicast, one receiver), counts it
/// in `lagged_total`, and continues; batches stop before it.
#[test]
fn a_published_gap_is_reported_as_a_lag_by_every_receiver_kind() {
    use shmchan::stats::Family;
    for (family, mode, overflow) in [
        (Family::Route, Mode::Broadcast, Overflow::Overwrite),
        (Family::Route, Mode::Broadcast, Overflow::Block),
        (Family::Route, Mode::Unicast, Overflow::Block),
        (Family::Channel, Mode::Broadcast, Overflow::Overwrite),
        (Family::Channel, Mode::Broadcast, Overflow::Block),
        (Family::Channel, Mode::Unicast, Overflow::Block),
    ] {
        let name = unique_name("raw-gap");
        let layout = RecordLayout::of::<u64>();
        let raw_builder = match family {
            Family::Route => raw::route(&name, layout),
            Family::Channel => raw::channel(&name, layout),
        }
        .capacity(4)
        .mode(mode)
        .overflow(overflow);
        let typed = |name: &str| {
            match family {
                Family::Route => Route::<u64>::builder(name),
                Family::Channel => Channel::<u64>::builder(name),
            }
            .capacity(4)
            .mode(mode)
            .overflow(overflow)
        };
        let mut rx = typed(&name).receiver().expect("receiver");
        let mut tx = raw_builder.sender().expect("raw sender");
        let config = format!("{family} {mode:?} {overflow:?}");
        tx.send_many_bytes(bytemuck::cast_slice(&[1u64, 2]))
            .expect("send");
        tx.publish_gap(0).expect("a gap of 0 publishes nothing");
        tx.publish_gap(40).expect("gap");
        tx.send_bytes(&43u64.to_ne_bytes()).expect("send");
        let mut buf = [0u64; 4];
        assert_eq!(rx.recv_many(&mut buf), Ok(2), "{config}");
        assert_eq!(buf[..2], [1, 2], "{config}");
        assert_eq!(
            rx.recv_many(&mut buf),
            Err(RecvError::Lagged(40)),
            "{config}"
        );
        assert_eq!(rx.recv(), Ok(43), "{config}");
        assert_eq!(rx.lagged_total(), 40, "{config}");
        // The gap's slot was freed: a lossless ring of 4 takes 4 more.
        assert_eq!(
            tx.try_send_many_bytes(bytemuck::cast_slice(&[44u64, 45, 46, 47])),
            Ok(4),
            "{config}"
        );
        if overflow == Overflow::Block {
            assert_eq!(
                tx.try_publish_gap(1),
                Err(TrySendError::Full(())),
                "{config}: a gap waits for room like a record"
            );
            assert_eq!(
                tx.publish_gap_timeout(1, TIMEOUT),
                Err(SendTimeoutError::Timeout(())),
                "{config}"
            );
        }
        assert_eq!(
            rx.try_iter().collect::<Vec<_>>(),
            [44, 45, 46, 47],
            "{config}"
        );
        drop((tx, rx));
        let _ = Route::<u64>::remove(&name);
    }
}

/// Issue 25 (7): an `Overwrite` receiver lapped over gap markers (`publish_gap`) is
/// told what it missed in the producer's numbers, per lag: records carry their
/// number, a gap of `n` stands for the next `n`, and after `Lagged(k)` the next
/// record is the last one plus `k + 1`. Both families; `try_recv` and
/// `try_recv_many`; `lagged_total` agrees.
#[test]
fn a_receiver_lapped_over_published_gaps_is_told_the_producers_count() {
    for family in [Family::Route, Family::Channel] {
        let name = unique_name("raw-gap-lap");
        let layout = RecordLayout::of::<u64>();
        let mut tx = match family {
            Family::Route => raw::route(&name, layout),
            Family::Channel => raw::channel(&name, layout),
        }
        .capacity(8)
        .overflow(Overflow::Overwrite)
        .sender()
        .expect("raw sender");
        let typed = || {
            match family {
                Family::Route => Route::<u64>::builder(&name),
                Family::Channel => Channel::<u64>::builder(&name),
            }
            .capacity(8)
            .overflow(Overflow::Overwrite)
            .receiver()
            .expect("receiver")
        };
        let (mut one, mut many) = (typed(), typed());
        // Producer number of the next record; each receiver's last record number and
        // what it was told since.
        let mut next = 0u64;
        let mut last = [u64::MAX; 2];
        let mut told = [0u64; 2];
        let mut lags = [0u32; 2];
        let mut received = [0u64; 2];
        let mut check = |i: usize, value: u64, last: &mut [u64; 2], told: &mut [u64; 2]| {
            assert_eq!(
                value,
                last[i].wrapping_add(told[i]).wrapping_add(1),
                "{family}, receiver {i}: told {} missing since record {}",
                told[i],
                last[i]
            );
            last[i] = value;
            told[i] = 0;
            received[i] += 1;
        };
        let mut lcg = 99u64;
        for _ in 0..300 {
            lcg = lcg
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            for _ in 0..1 + (lcg >> 33) % 20 {
                lcg = lcg.wrapping_mul(6364136223846793005).wrapping_add(1);
                if (lcg >> 40) % 4 == 0 {
                    let n = 1 + (lcg >> 20) % 1000;
                    tx.publish_gap(n).expect("gap");
                    next += n;
                } else {
                    tx.send_bytes(&next.to_ne_bytes()).expect("send");
                    next += 1;
                }
            }
            loop {
                match one.try_recv() {
                    Ok(v) => check(0, v, &mut last, &mut told),
                    Err(TryRecvError::Lagged(k)) => {
                        told[0] += k;
                        lags[0] += 1;
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(other) => panic!("{family}: {other:?}"),
                }
            }
            let mut buf = [0u64; 5];
            loop {
                match many.try_recv_many(&mut buf) {
                    Ok(n) => buf[..n]
                        .iter()
                        .for_each(|&v| check(1, v, &mut last, &mut told)),
                    Err(TryRecvError::Lagged(k)) => {
                        told[1] += k;
                        lags[1] += 1;
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(other) => panic!("{family}: {other:?}"),
                }
            }
        }
        tx.send_bytes(&next.to_ne_bytes()).expect("send");
        assert_eq!(one.try_recv(), Ok(next), "{family}");
        assert_eq!(many.try_recv(), Ok(next), "{family}");
        assert!(lags.iter().all(|&n| n > 50), "{family}: lapped ({lags:?})");
        // Every number up to `next` was received or counted missing.
        assert_eq!(received[0] + 1 + one.lagged_total(), next + 1, "{family}");
        assert_eq!(received[1] + 1 + many.lagged_total(), next + 1, "{family}");
        drop((tx, one, many));
        let _ = Route::<u64>::remove(&name);
    }
}

/// A segment of the previous layout version (5: no gap accounting, issue 25) is
/// refused with a mismatch naming both versions, never joined.
#[test]
fn a_segment_of_the_previous_layout_version_is_refused() {
    use std::os::unix::fs::FileExt;
    let dir = std::env::temp_dir().join(unique_name("version"));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join("seg");
    let open = || {
        Route::<u64>::builder("version")
            .path(&path)
            .open_timeout(TIMEOUT)
            .receiver()
    };
    let rx = open().expect("a fresh segment");
    // The header's version word (offset 8, docs/design.md), as a version 5 build wrote it.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open the file");
    file.write_all_at(&5u32.to_ne_bytes(), 8).expect("write");
    let (field, expected, found, message) = mismatch(open());
    assert_eq!(
        (field, expected.as_str(), found.as_str()),
        ("format version", "6", "5")
    );
    assert!(message.contains("format version"), "{message}");
    drop(rx);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 25 (7), concurrently: a producer thread publishes records and gaps as fast as
/// it can into a small `Overwrite` ring while a receiver on another thread (`recv`,
/// `recv_many`) is lapped over and during gap publications: every lag is the
/// producer's count, per event, and the last record arrives.
#[test]
// The test's own bookkeeping between its threads, not ring code: std atomics are fine
// here (clippy.toml bans them in the crate's code for the loom shim's sake).
#[allow(clippy::disallowed_types)]
fn a_receiver_lapped_by_a_running_producer_is_told_the_producers_count() {
    for batch in [false, true] {
        let name = unique_name("raw-gap-race");
        let layout = RecordLayout::of::<u64>();
        let mut tx = raw::route(&name, layout)
            .capacity(16)
            .overflow(Overflow::Overwrite)
            .sender()
            .expect("raw sender");
        let mut rx = Route::<u64>::builder(&name)
            .capacity(16)
            .overflow(Overflow::Overwrite)
            .receiver()
            .expect("receiver");
        const EVENTS: u64 = 200_000;
        // The number of the last record, once the producer knows it.
        let total = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX));
        let total_set = std::sync::Arc::clone(&total);
        let producer = std::thread::spawn(move || {
            let mut next = 0u64;
            let mut lcg = 7u64;
            for _ in 0..EVENTS {
                lcg = lcg
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                if (lcg >> 40) % 8 == 0 {
                    let n = 1 + (lcg >> 20) % 100;
                    tx.publish_gap(n).expect("gap");
                    next += n;
                } else {
                    tx.send_bytes(&next.to_ne_bytes()).expect("send");
                    next += 1;
                }
            }
            total_set.store(next, std::sync::atomic::Ordering::SeqCst);
            tx.send_bytes(&next.to_ne_bytes()).expect("send");
            (next, tx)
        });
        let (mut expected, mut told, mut lags) = (0u64, 0u64, 0u32);
        let mut buf = [0u64; 8];
        let limit = std::time::Instant::now() + Duration::from_secs(60);
        let last = 'read: loop {
            assert!(std::time::Instant::now() < limit, "batch {batch}: no end");
            let got = if batch {
                rx.recv_many_timeout(&mut buf, Duration::from_secs(5))
            } else {
                rx.recv_timeout(Duration::from_secs(5)).map(|v| {
                    buf[0] = v;
                    1
                })
            };
            match got {
                Ok(n) => {
                    for &v in &buf[..n] {
                        assert_eq!(
                            v,
                            expected + told,
                            "batch {batch}: told {told} missing before {v}"
                        );
                        (expected, told) = (v + 1, 0);
                        if v == total.load(std::sync::atomic::Ordering::SeqCst) {
                            break 'read v;
                        }
                    }
                }
                Err(RecvTimeoutError::Lagged(k)) => {
                    told += k;
                    lags += 1;
                }
                Err(other) => panic!("batch {batch}: {other:?}"),
            }
        };
        let (total, tx) = producer.join().expect("producer");
        assert_eq!(last, total, "batch {batch}: the last record");
        assert!(lags > 0, "batch {batch}: never lapped");
        drop((tx, rx));
        let _ = Route::<u64>::remove(&name);
    }
}
