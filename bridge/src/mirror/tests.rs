//! The importer's frame handling on a local mirror, no network: frames made by hand,
//! a receiver on the mirror that says what a far reader would see.

use super::*;
use crate::DEFAULT_MAX_RATE;
use shmchan::raw::{self, RecordLayout};
use shmchan::stats::Family;
use shmchan::{Mode, Overflow, Receiver, Route, TryRecvError};

const EPOCH: u64 = 0x0e90c4;
const SOURCE: u64 = 0x5011ce;

/// What a far reader sees.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Records(Vec<u64>),
    Lagged(u64),
    Disconnected,
}

struct Bench {
    _dir: tempfile::TempDir,
    mirror: Mirror,
    rx: Receiver<u64>,
}

fn meta() -> Meta {
    Meta {
        family: Family::Route,
        mode: Mode::Broadcast,
        overflow: Overflow::Block,
        capacity: 1024,
        max_receivers: 8,
        record_size: 8,
        record_align: 8,
        type_name: "u64".into(),
        epoch: EPOCH,
        source_id: SOURCE,
    }
}

impl Bench {
    fn new() -> Bench {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("mirror");
        let builder = raw::route("mirror", RecordLayout::of::<u64>())
            .path(&path)
            .capacity(1024)
            .overflow(Overflow::Block);
        let open = move || {
            builder.clone().sender().map_err(|e| BridgeError::Segment {
                name: "mirror".into(),
                source: e,
            })
        };
        let mirror = Mirror::new(
            Box::new(open),
            "test/unit".into(),
            "mirror".into(),
            &meta(),
            DEFAULT_MAX_RATE,
            Arc::new(AtomicBool::new(false)),
            Arc::new(Counters::default()),
        )
        .expect("mirror sender");
        let rx = Route::<u64>::builder("mirror")
            .path(&path)
            .capacity(1024)
            .overflow(Overflow::Block)
            .receiver()
            .expect("far reader");
        Bench {
            _dir: dir,
            mirror,
            rx,
        }
    }

    /// Feeds `frames` to the importer: each must be taken without ending it.
    fn feed(&mut self, frames: &[Vec<u8>]) {
        for f in frames {
            if self.mirror.frame(f, Instant::now()).is_err() {
                panic!("the importer ended on a frame");
            }
        }
    }

    /// Everything the far reader can read now, records grouped between events.
    fn seen(&mut self) -> Vec<Seen> {
        let mut out = Vec::new();
        let mut run = Vec::new();
        loop {
            let event = match self.rx.try_recv() {
                Ok(v) => {
                    run.push(v);
                    continue;
                }
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Lagged(n)) => Some(Seen::Lagged(n)),
                Err(TryRecvError::Disconnected) => Some(Seen::Disconnected),
                Err(e) => panic!("far reader: {e}"),
            };
            if !run.is_empty() {
                out.push(Seen::Records(std::mem::take(&mut run)));
            }
            match event {
                Some(Seen::Disconnected) => {
                    out.push(Seen::Disconnected);
                    return out;
                }
                Some(e) => out.push(e),
                None => return out,
            }
        }
    }

    fn stats(&self) -> ImportStats {
        self.mirror.counters.stats()
    }
}

/// An exporter's frames: numbered in the order they are made.
struct Exporter {
    epoch: u64,
    frame: u64,
}

impl Exporter {
    fn new() -> Exporter {
        Exporter {
            epoch: EPOCH,
            frame: 0,
        }
    }

    fn header(&mut self, first: u64, count: u32, flags: u32) -> Header {
        self.frame += 1;
        Header {
            record_size: 8,
            epoch: self.epoch,
            source_id: SOURCE,
            frame: self.frame - 1,
            first,
            count,
            flags: FLAG_SOURCE_SEQ | flags,
        }
    }

    /// The next frame: records `first..first + count` (each its sequence number).
    fn frame(&mut self, first: u64, count: u32) -> Vec<u8> {
        let records: Vec<u8> = (first..first + u64::from(count))
            .flat_map(|v| v.to_ne_bytes())
            .collect();
        self.header(first, count, 0).encode(&records)
    }

    /// The next frame: the source's producer left.
    fn gone(&mut self, at: u64) -> Vec<u8> {
        self.header(at, 0, FLAG_NO_PRODUCER).encode(&[])
    }
}

fn records(r: std::ops::Range<u64>) -> Seen {
    Seen::Records(r.collect())
}

#[test]
fn a_repeated_frame_does_not_rewind_the_stream() {
    let mut b = Bench::new();
    let mut x = Exporter::new();
    let (a, bb, c) = (x.frame(0, 10), x.frame(10, 10), x.frame(20, 10));
    b.feed(&[a.clone(), bb, a, c]);
    assert_eq!(b.seen(), [records(0..30)]);
    assert_eq!((b.stats().stale, b.stats().gaps), (1, 0));
}

#[test]
fn a_repeated_pair_of_frames_is_written_once() {
    let mut b = Bench::new();
    let mut x = Exporter::new();
    let (a, bb) = (x.frame(0, 10), x.frame(10, 10));
    b.feed(&[a.clone(), bb.clone(), a, bb, x.frame(20, 5)]);
    assert_eq!(b.seen(), [records(0..25)]);
    assert_eq!((b.stats().records, b.stats().stale), (25, 2));
}

#[test]
fn a_stale_empty_frame_is_not_a_gap() {
    let mut b = Bench::new();
    let mut x = Exporter::new();
    let (a, empty, bb) = (x.frame(0, 3), x.frame(3, 0), x.frame(3, 7));
    b.feed(&[a, empty.clone(), bb, empty, x.frame(10, 10)]);
    assert_eq!(b.seen(), [records(0..20)]);
    assert_eq!((b.stats().gaps, b.stats().stale), (0, 1));
}

#[test]
fn a_late_frame_after_a_gap_is_dropped_and_the_stream_goes_on() {
    // C overtook B: B's records are missed (one gap of 10), and B arriving late
    // neither rewinds the stream nor makes a second gap.
    let mut b = Bench::new();
    let mut x = Exporter::new();
    let (a, bb, c, d) = (
        x.frame(0, 10),
        x.frame(10, 10),
        x.frame(20, 10),
        x.frame(30, 10),
    );
    b.feed(&[a, c, bb, d]);
    assert_eq!(
        b.seen(),
        [records(0..10), Seen::Lagged(10), records(20..40)]
    );
    assert_eq!((b.stats().gaps, b.stats().missing), (1, 10));
    assert_eq!(b.stats().stale, 1);
}

#[test]
fn a_corrupt_sequence_is_not_a_gap() {
    let mut b = Bench::new();
    let mut x = Exporter::new();
    let a = x.frame(0, 10);
    let mut corrupt = x.frame(10, 10);
    corrupt[32 + 7] ^= 0x80; // bit 63 of `first`
    x.frame -= 1; // the true frame B has the same number
    b.feed(&[a, corrupt, x.frame(10, 10)]);
    assert_eq!(b.seen(), [records(0..20)]);
    let s = b.stats();
    assert_eq!((s.gaps, s.corrupt), (0, 1));
    let why = b.mirror.counters.last_corrupt();
    assert!(why.is_some_and(|w| w.contains("further than")));
}

#[test]
fn corrupt_frame_numbers_and_sequences_are_skipped() {
    let mut b = Bench::new();
    let mut x = Exporter::new();
    let a = x.frame(0, 10);
    // A frame number from far ahead: taking it would make every true frame stale.
    let mut far_frame = x.frame(10, 10);
    far_frame[24 + 7] ^= 0x80;
    // A newer frame whose sequence goes back.
    let back = x.frame(5, 1);
    // A jump of 2^62 records: more than any source publishes in a lifetime.
    let jump = x.frame(10 + (1 << 62), 0);
    b.feed(&[a, far_frame, back, jump, x.frame(10, 10)]);
    assert_eq!(b.seen(), [records(0..20)]);
    let s = b.stats();
    assert_eq!((s.gaps, s.corrupt, s.records), (0, 3, 20));
}

#[test]
fn a_credible_jump_is_a_gap() {
    // A jump a source can make: 10^9 records (a quarter of a second at the bound).
    let mut b = Bench::new();
    let mut x = Exporter::new();
    let first = 10 + 1_000_000_000;
    b.feed(&[x.frame(0, 10), x.frame(first, 5)]);
    assert_eq!(
        b.seen(),
        [
            records(0..10),
            Seen::Lagged(1_000_000_000),
            records(first..first + 5)
        ]
    );
}

#[test]
fn a_malformed_frame_is_skipped() {
    let mut b = Bench::new();
    let mut x = Exporter::new();
    let a = x.frame(0, 10);
    let mut short = x.frame(10, 10);
    short.truncate(short.len() - 3);
    let mut other_size = x.header(10, 1, 0);
    other_size.record_size = 4;
    let other_size = other_size.encode(&[0; 4]);
    x.frame -= 2;
    b.feed(&[a, b"garbage".to_vec(), short, other_size, x.frame(10, 10)]);
    assert_eq!(b.seen(), [records(0..20)]);
    assert_eq!(b.stats().corrupt, 3);
}

#[test]
fn a_frame_of_an_unannounced_exporter_waits_for_its_token() {
    let mut b = Bench::new();
    let mut x = Exporter::new();
    b.feed(&[x.frame(0, 10)]);
    // A stray epoch with another source: a restart, were it announced.
    let mut stray = Exporter::new();
    stray.epoch = 0x5742a1;
    let mut h = stray.header(10, 0, 0);
    h.source_id = 0xbad;
    b.feed(&[h.encode(&[])]);
    // The true exporter goes on; the stray frame expires, counted.
    b.feed(&[x.frame(10, 10)]);
    b.mirror.expire(Instant::now() + PENDING_HOLD);
    assert_eq!(b.seen(), [records(0..20)]);
    assert_eq!(b.stats().corrupt, 1);
    assert!(b.mirror.pending.is_empty());
}

#[test]
fn frames_of_unannounced_exporters_are_held_in_bounds() {
    let mut b = Bench::new();
    let mut stray = Exporter::new();
    stray.epoch = 0x5742a1;
    let frames: Vec<Vec<u8>> = (0..PENDING_MAX as u64 + 6)
        .map(|i| stray.frame(i, 1))
        .collect();
    b.feed(&frames);
    assert_eq!(b.mirror.pending.len(), PENDING_MAX);
    assert_eq!(b.stats().corrupt, 6);
    assert_eq!(b.seen(), []);
}

#[test]
fn a_new_exporter_is_followed_once_announced_and_its_late_predecessor_is_stale() {
    let mut b = Bench::new();
    let mut x = Exporter::new();
    let a = x.frame(0, 10);
    b.feed(std::slice::from_ref(&a));
    // The exporter restarts on the same source; its first frames come before its
    // token: held, then taken in order when the token comes.
    let mut y = Exporter::new();
    y.epoch = 0x2e57a7;
    b.feed(&[y.frame(15, 5), y.frame(20, 5)]);
    assert_eq!(b.seen(), [records(0..10)]);
    b.mirror
        .announce(y.epoch, Instant::now())
        .unwrap_or_else(|_| panic!("announce"));
    // The first epoch's frame, repeated late, is stale.
    b.feed(&[a, y.frame(25, 5)]);
    assert_eq!(b.seen(), [Seen::Lagged(5), records(15..30)]);
    let s = b.stats();
    assert_eq!((s.epochs, s.stale, s.corrupt), (2, 1, 0));
}

#[test]
fn the_producer_leaving_and_coming_back_reaches_the_mirror_readers() {
    let mut b = Bench::new();
    let mut x = Exporter::new();
    let (a, gone) = (x.frame(0, 10), x.gone(10));
    b.feed(&[a, gone.clone()]);
    assert_eq!(b.seen(), [records(0..10), Seen::Disconnected]);
    assert_eq!(b.rx.try_recv(), Err(TryRecvError::Disconnected));
    // A producer attaches: the mirror's readers receive again.
    b.feed(&[x.frame(10, 0), x.frame(10, 5)]);
    assert_eq!(b.seen(), [records(10..15)]);
    // The `gone` frame repeated late changes nothing.
    b.feed(&[gone, x.frame(15, 5)]);
    assert_eq!(b.seen(), [records(15..20)]);
    assert_eq!(b.stats().producer_left, 1);
}

#[test]
fn records_missed_while_no_producer_are_a_gap_when_one_comes() {
    let mut b = Bench::new();
    let mut x = Exporter::new();
    b.feed(&[x.frame(0, 10), x.gone(10), x.gone(13)]);
    assert_eq!(b.seen(), [records(0..10), Seen::Disconnected]);
    b.feed(&[x.frame(13, 2)]);
    assert_eq!(b.seen(), [Seen::Lagged(3), records(13..15)]);
}
