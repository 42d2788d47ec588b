//! Observation: opening an existing segment of unknown record type to look at it, for
//! `stats` and the `shmchan` tool. Nothing in the participant code depends on this
//! module.
//!
//! An observer is not a participant. It takes no shared lock, so a segment whose every
//! participant died stays stale (re-creatable, removable) while `shmchan ls`/`stat` look
//! at it; and it copies what it reads with `pread` into local memory instead of mapping
//! the file, so a segment truncated or re-created under it gives an error, never
//! `SIGBUS`. The one exception is `ObservedMap` (`shmchan tail`), which maps the slots
//! read-only and therefore holds a shared lock for as long as it lives; see there.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use memmap2::{MmapOptions, MmapRaw};

use super::file::{io_err, is_ours_or_empty, retry_pause, same_file, try_flock};
use super::header::{
    Check, Fingerprint, Header, Layout, CONTROL_OFFSET, MAGIC, RECEIVERS_OFFSET, STATE_READY,
};
use super::pid_ns::PidNamespace;
use crate::error::OpenError;
use crate::layout::{Control, ProducerEntry, ReceiverEntry};
use crate::ring::RingView;
use crate::sync::{AtomicU64, Ordering};

/// What the header of an existing segment says. Every value was bounded, and the layout
/// was recomputed from the fingerprint with [`Layout::new`] and compared with the
/// header's stored offsets, so the layout is never taken from shared memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeaderInfo {
    pub fp: Fingerprint,
    pub layout: Layout,
    pub created_at_ns: u64,
    pub creator_pid: u64,
    /// The creator's pid namespace; see `pid_ns.rs`.
    pub pid_ns: PidNamespace,
}

/// An existing segment, opened read-only to observe it (see the module doc).
#[derive(Debug)]
pub(crate) struct Observed {
    file: File,
    path: PathBuf,
    info: HeaderInfo,
}

impl Observed {
    /// Opens the segment at `path` for reading and validates its header. Fails with
    /// [`OpenError::Corrupt`] if it is not a ready shmchan segment (including one whose
    /// creator is still initialising it or died doing so: see [`probe_stale`]).
    pub(crate) fn open(path: &Path) -> Result<Observed, OpenError> {
        let file = open_read_only(path)?;
        let info = read_header(&file, path)?;
        check_len(&file, path, &info.layout)?;
        Ok(Observed {
            file,
            path: path.to_owned(),
            info,
        })
    }

    /// The segment file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The validated header.
    pub(crate) fn info(&self) -> &HeaderInfo {
        &self.info
    }

    /// Copies the receiver table, the producer table (empty for a `Route`), then the
    /// control block, into local memory and hands them to `f`. The copies are not atomic snapshots of the whole segment, only of
    /// each 8-byte field (best effort: `pread` gives no per-word guarantee either), and
    /// the values are untrusted. The table is read before the control block so that
    /// `head - cursor` is not negative for an honest receiver (its cursor never passes
    /// the head of its time). Fails if the segment was truncated or re-created since
    /// it was opened.
    pub(crate) fn snapshot<R>(
        &self,
        f: impl FnOnce(&Control, &[ReceiverEntry], &[ProducerEntry]) -> R,
    ) -> Result<R, OpenError> {
        let gone = |e: io::Error| self.gone(e);
        // SAFETY: `ReceiverEntry` is made of atomics and padding only, so any bytes
        // are a valid value.
        let receivers = unsafe {
            pread_values::<ReceiverEntry>(
                &self.file,
                RECEIVERS_OFFSET as u64,
                self.info.layout.max_receivers,
            )
        }
        .map_err(gone)?;
        // SAFETY: as above, `ProducerEntry` is atomics and padding only.
        let producers = unsafe {
            pread_values::<ProducerEntry>(
                &self.file,
                self.info.layout.producers_offset as u64,
                self.info.layout.max_producers,
            )
        }
        .map_err(gone)?;
        // SAFETY: as above, `Control` is atomics and padding only.
        let control = unsafe { pread_values::<Control>(&self.file, CONTROL_OFFSET as u64, 1) }
            .map_err(gone)?;
        // Re-creation rewrites the header (a new creation time at least): compare it
        // after the reads, so a copy taken from a re-created segment is refused.
        let now = read_header(&self.file, &self.path)?;
        if now != self.info {
            return Err(OpenError::Corrupt {
                path: self.path.clone(),
                reason: "the segment was re-created since it was opened".into(),
            });
        }
        Ok(f(&control[0], &receivers, &producers))
    }

    fn gone(&self, e: io::Error) -> OpenError {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            OpenError::Corrupt {
                path: self.path.clone(),
                reason: "the file is shorter than its layout (truncated, or being re-created)"
                    .into(),
            }
        } else {
            io_err(&self.path, "read", e)
        }
    }

    /// Whether no process holds the segment open; see [`probe_stale`].
    pub(crate) fn is_stale(&self) -> Result<bool, OpenError> {
        probe_file(&self.file, &self.path)
    }

    /// Maps the segment read-only for a [`observe`](crate::ring::observe::observe)
    /// reader, holding a shared lock on a file of its own as long as the map lives.
    ///
    /// The lock is what makes the mapping safe: without it, a new participant could
    /// find the segment stale and re-initialise it (truncate it to 0), and the next
    /// access to the mapping would fault. With it, this process counts as holding the
    /// segment open: it is not judged stale while the map lives. Waits at most
    /// `timeout` while an initialiser holds the exclusive lock.
    pub(crate) fn map(&self, timeout: Duration) -> Result<ObservedMap, OpenError> {
        let start = Instant::now();
        loop {
            let file = open_read_only(&self.path)?;
            if !try_flock(&file, libc::LOCK_SH).map_err(|e| io_err(&self.path, "flock", e))? {
                retry_pause(&self.path, start, timeout)?;
                continue;
            }
            if !same_file(&file, &self.path) {
                continue; // unlinked and re-created since: look at the new one
            }
            let info = read_header(&file, &self.path)?;
            if info != self.info {
                return Err(OpenError::Corrupt {
                    path: self.path.clone(),
                    reason: "the segment was re-created since it was opened".into(),
                });
            }
            check_len(&file, &self.path, &info.layout)?;
            // No `populate`: the observer touches only the slots it reads.
            let map = MmapOptions::new()
                .len(info.layout.total_len)
                .map_raw_read_only(&file)
                .map_err(|e| io_err(&self.path, "mmap", e))?;
            return Ok(ObservedMap {
                map,
                _file: file,
                layout: info.layout,
            });
        }
    }
}

/// A read-only mapping of an observed segment. Holds a shared lock (see
/// [`Observed::map`]).
pub(crate) struct ObservedMap {
    map: MmapRaw,
    // Kept open for the shared `flock` that keeps the file from being re-initialised.
    _file: File,
    layout: Layout,
}

impl std::fmt::Debug for ObservedMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObservedMap")
            .field("layout", &self.layout)
            .finish()
    }
}

impl ObservedMap {
    /// The ring, for [`observe`](crate::ring::observe::observe) only: the
    /// memory is mapped read-only, so the view has no receiver table, is not lossless
    /// (nothing is ever woken), and any store through it would fault. `observe` uses
    /// only `Relaxed` loads of at most 8 bytes, which Rust defines on read-only memory.
    pub(crate) fn view(&self) -> RingView<'_> {
        let base = self.map.as_ptr();
        // SAFETY: as in `Segment::view`: the mapping is `layout.total_len` bytes (the
        // file length was checked before mapping and the shared lock keeps the file
        // from being truncated by a re-initialiser), page aligned, lives as long as
        // `&self`, and the control block and slots lie inside it at offsets aligned for
        // their types; they are made of atomics only. The mapping is read-only; the
        // only user, `ring::observe::observe`, performs only relaxed loads on it.
        unsafe {
            let ctl = &*(base.add(CONTROL_OFFSET) as *const Control);
            let slots = std::slice::from_raw_parts(
                base.add(self.layout.slots_offset) as *const AtomicU64,
                self.layout.geom.slot_words(),
            );
            RingView {
                ctl,
                receivers: &[],
                producers: &[],
                slots,
                geom: self.layout.geom,
                lossless: false,
                unicast: false,
            }
        }
    }
}

fn open_read_only(path: &Path) -> Result<File, OpenError> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| io_err(path, "open", e))
}

fn check_len(file: &File, path: &Path, layout: &Layout) -> Result<(), OpenError> {
    let len = file.metadata().map_err(|e| io_err(path, "fstat", e))?.len();
    if len < layout.total_len as u64 {
        return Err(OpenError::Corrupt {
            path: path.to_owned(),
            reason: format!(
                "the file is {len} bytes, the layout needs {}",
                layout.total_len
            ),
        });
    }
    Ok(())
}

/// Reads `count` values of `T` at `offset` into zero-initialised local memory.
///
/// # Safety
/// Every bit pattern must be a valid `T` (types made of atomics and padding only).
unsafe fn pread_values<T>(file: &File, offset: u64, count: usize) -> io::Result<Box<[T]>> {
    let len = count
        .checked_mul(size_of::<T>())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "read too large"))?;
    let mut buf = Box::<[T]>::new_uninit_slice(count);
    // SAFETY: the allocation is `count` values of `T`, exclusively ours; zeroing it
    // initialises every byte (padding included).
    unsafe { std::ptr::write_bytes(buf.as_mut_ptr(), 0, count) };
    // SAFETY: the allocation is `len` bytes, every byte initialised (zeroed above),
    // and exclusively ours while the slice lives.
    let bytes = unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<u8>(), len) };
    std::os::unix::fs::FileExt::read_exact_at(file, bytes, offset)?;
    // SAFETY: every byte is initialised, and the caller guarantees any bytes make a
    // valid `T`.
    Ok(unsafe { buf.assume_init() })
}

/// Reads and validates the header of an existing segment of any record type.
fn read_header(file: &File, path: &Path) -> Result<HeaderInfo, OpenError> {
    let corrupt = |reason: String| OpenError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    // The magic number first, so that a short foreign file is called foreign.
    let mut magic = [0u8; 8];
    let n = std::os::unix::fs::FileExt::read_at(file, &mut magic, 0)
        .map_err(|e| io_err(path, "read", e))?;
    let magic = u64::from_le_bytes(magic);
    if n == 8 && magic != MAGIC && magic != 0 {
        return Err(corrupt("bad magic number: not a shmchan segment".into()));
    }
    // SAFETY: `Header` is made of atomics only; any bytes are a valid value.
    let header = match unsafe { pread_values::<Header>(file, 0, 1) } {
        Ok(h) => h,
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            return Err(corrupt(
                "the file is shorter than a header (its creator died or is creating it)".into(),
            ))
        }
        Err(e) => return Err(io_err(path, "read", e)),
    };
    let header = &header[0];
    let r = Ordering::Relaxed;
    match header.magic.load(r) {
        MAGIC => {}
        0 => {
            return Err(corrupt(
                "no header yet: its creator is still initialising it, or died doing so".into(),
            ))
        }
        _ => return Err(corrupt("bad magic number: not a shmchan segment".into())),
    }
    if header.state.load(r) != STATE_READY {
        return Err(corrupt(
            "not initialised: its creator is still initialising it, or died doing so".into(),
        ));
    }
    // Every value bounded, the layout recomputed from the fingerprint and compared
    // with the stored offsets: the same validation a participant's open runs.
    let (fp, layout) = header.validate(path).map_err(|c| match c {
        Check::Fail(e) => e,
        Check::NotReady => corrupt("not initialised".into()),
    })?;
    Ok(HeaderInfo {
        fp,
        layout,
        created_at_ns: header.created_at_ns.load(r),
        creator_pid: header.creator_pid.load(r),
        pid_ns: header.pid_namespace(),
    })
}

/// Whether no process holds the segment at `path` open (every participant died, or its
/// creator died before initialising it): the segment is *stale*.
///
/// Every participant holds a shared `flock` while it has the segment open, and an
/// initialiser the exclusive one; so the probe tries the exclusive lock without waiting
/// and, if it got it, releases it at once. It never waits and holds nothing afterwards;
/// an opener that races with the probe retries its lock a millisecond later.
pub(crate) fn probe_stale(path: &Path) -> Result<bool, OpenError> {
    probe_file(&open_read_only(path)?, path)
}

fn probe_file(file: &File, path: &Path) -> Result<bool, OpenError> {
    let free = try_flock(file, libc::LOCK_EX).map_err(|e| io_err(path, "flock", e))?;
    if free {
        unlock(file);
    }
    Ok(free)
}

fn unlock(file: &File) {
    // SAFETY: `flock` on a file descriptor we own; it touches no memory of ours. It
    // cannot fail on a valid descriptor, and closing the file would release it anyway.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
}

/// What [`remove_unused`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Removal {
    /// Removed; no process had it open.
    Removed,
    /// Removed although processes had it open (`force`); they keep their mapping.
    RemovedLive,
    /// Kept: a process has it open.
    Live,
    /// There was no such file.
    NotFound,
    /// Kept: the file is not a shmchan segment.
    NotASegment,
}

/// Unlinks the segment at `path` if no process has it open (or anyway, with `force`).
///
/// The file is unlinked while this process holds the exclusive lock, so no participant
/// can join between the check and the unlink: a process that opened the file before
/// the unlink gets its lock only afterwards, finds that the path no longer names its
/// file, and starts over with a new segment.
pub(crate) fn remove_unused(path: &Path, force: bool) -> Result<Removal, OpenError> {
    loop {
        let file = match open_read_only(path) {
            Ok(f) => f,
            Err(OpenError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Ok(Removal::NotFound)
            }
            Err(e) => return Err(e),
        };
        if !looks_like_segment(&file, path)? {
            return Ok(Removal::NotASegment);
        }
        let free = try_flock(&file, libc::LOCK_EX).map_err(|e| io_err(path, "flock", e))?;
        if !free && !force {
            return Ok(Removal::Live);
        }
        if !same_file(&file, path) {
            continue; // replaced since we opened it: judge the new file
        }
        return match std::fs::remove_file(path) {
            Ok(()) if free => Ok(Removal::Removed),
            Ok(()) => Ok(Removal::RemovedLive),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Removal::NotFound),
            Err(e) => Err(io_err(path, "unlink", e)),
        };
    }
}

/// A shmchan segment, or what one is before its header is written: an empty file, or
/// (only under a `shmchan.` file name) a header of zeros left by a creator that died
/// after sizing the file.
fn looks_like_segment(file: &File, path: &Path) -> Result<bool, OpenError> {
    if is_ours_or_empty(file, path)? {
        return Ok(true);
    }
    let named_ours = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(crate::options::FILE_PREFIX));
    if !named_ours {
        return Ok(false);
    }
    let mut head = [0u8; Header::SIZE];
    match std::os::unix::fs::FileExt::read_exact_at(file, &mut head, 0) {
        Ok(()) => Ok(head.iter().all(|b| *b == 0)),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(io_err(path, "read", e)),
    }
}
