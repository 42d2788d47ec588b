//! Opening a segment file with arbitrary contents: an error or a working handle, never a
//! panic, an out-of-bounds access or a hang. A property-based fuzz harness with a
//! bounded number of cases, so it runs in every test run.

mod common;

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

use common::{unique_name, Rec};
use proptest::prelude::*;
use shmchan::{Overflow, Route, TryRecvError};

/// Holds a shared `flock` on the file, as a live participant would, so the opener
/// validates what it finds instead of re-initialising it.
struct Participant(#[allow(dead_code)] File);

fn participate(path: &Path) -> Participant {
    let file = File::open(path).expect("open");
    // SAFETY: flock on a descriptor we own.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
    assert_eq!(rc, 0, "flock");
    Participant(file)
}

fn builder(path: &Path) -> shmchan::Builder<Rec> {
    Route::<Rec>::builder("fuzz")
        .path(path)
        .capacity(8)
        .overflow(Overflow::Block)
        .open_timeout(Duration::from_millis(3))
}

/// A builder that sets no segment option: it adopts whatever a valid header states, so
/// every value it maps by must come out of the header's validation.
fn adopting(path: &Path) -> shmchan::Builder<Rec> {
    Route::<Rec>::builder("fuzz")
        .path(path)
        .open_timeout(Duration::from_millis(3))
}

/// Opens `bytes` as a segment, with and without a live participant, with the options
/// stated and with none (adopting the header's), and uses whatever opens.
fn open_contents(bytes: &[u8], with_participant: bool) {
    let dir = std::env::temp_dir().join(unique_name("fuzz"));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join("seg");
    std::fs::write(&path, bytes).expect("write");
    let _p = with_participant.then(|| participate(&path));
    for open in [builder, adopting] {
        if let Ok(mut rx) = open(&path).receiver() {
            // Whatever the header said, the ring is usable within its own bounds.
            for _ in 0..16 {
                match rx.try_recv() {
                    Ok(_) | Err(TryRecvError::Lagged(_)) => {}
                    Err(_) => break,
                }
            }
        }
        if let Ok(mut tx) = open(&path).sender() {
            for i in 0..16 {
                if tx.try_send(Rec::new(i)).is_err() {
                    break;
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The bytes of a valid segment for `builder`, as written by the library.
fn valid_segment() -> Vec<u8> {
    let dir = std::env::temp_dir().join(unique_name("fuzz-valid"));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let path = dir.join("seg");
    let rx = builder(&path).receiver().expect("valid segment");
    let bytes = std::fs::read(&path).expect("read");
    drop(rx);
    let _ = std::fs::remove_dir_all(&dir);
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048), participant in any::<bool>()) {
        open_contents(&bytes, participant);
    }

    #[test]
    fn a_valid_header_with_words_overwritten(
        edits in proptest::collection::vec((0usize..1536 / 8, any::<u64>(), 0u8..4), 1..8),
        cut in proptest::option::of(0usize..8192),
        participant in any::<bool>(),
    ) {
        let mut bytes = valid_segment();
        for (word, value, kind) in edits {
            // Adversarial values as well as random ones.
            let value = match kind {
                0 => value,
                1 => u64::MAX - (value % 4),
                2 => value % 4096,
                _ => 0,
            };
            bytes[word * 8..word * 8 + 8].copy_from_slice(&value.to_le_bytes());
        }
        if let Some(cut) = cut {
            bytes.truncate(cut);
        }
        open_contents(&bytes, participant);
    }
}
