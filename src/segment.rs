//! The segment: a file in `/dev/shm` (or at a user-given path) mapped shared, holding a
//! header, a ring control block, the receiver table and the slots.
//!
//! # Layout
//!
//! ```text
//! offset 0      Header        magic, version, state, fingerprint, offsets (< 512 B)
//! offset 512    Control       head | data futex | space futex | membership | read (5 x 128 B)
//! offset 1152   receivers     max_receivers x ReceiverEntry (128 B each)
//! then          producers     max_producers x ProducerEntry (128 B each; Channel only)
//! page-aligned  slots         capacity x stride (stamp word + record words)
//! ```
//!
//! # Opening: one initialiser, no wedged names
//!
//! Every participant holds a *shared* `flock` on the file for as long as it has the
//! segment open. Initialising needs the *exclusive* lock, so it happens only when no
//! participant is alive: on a new file, on a file whose creator died half-way (the
//! kernel dropped its lock, and `state` is not `READY`), or on a stale segment whose
//! every participant died (it is reclaimed with the opener's options). An opener that
//! cannot take the exclusive lock takes the shared one, which waits (with a timeout)
//! while an initialiser holds the exclusive lock, and then validates the header.
//!
//! # Trust
//!
//! The header is shared with every process that can open the file. It is validated on
//! open against what *this* side expects (its own record type and options), and the
//! geometry used afterwards is this side's own, never re-read from shared memory. A
//! peer with write access can still corrupt records or cursors: the ring code masks
//! every index and bounds every loop, so the worst outcome is garbage records, errors,
//! or a wait that ends at the caller's timeout. A peer that truncates the file can make
//! this process fault on access (`SIGBUS`); the segment is therefore created with
//! `posix_fallocate`, so a full `/dev/shm` is an error at creation, not a fault later.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use memmap2::{MmapOptions, MmapRaw};

use crate::error::OpenError;
use crate::layout::{Control, Geometry, ProducerEntry, ReceiverEntry};
use crate::ring::RingView;
use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// `b"SHMCHAN\x01"` as a little-endian word.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"SHMCHAN\x01");
/// Layout version; bumped on any incompatible change of this file's structures.
pub(crate) const VERSION: u32 = 2;

const STATE_INITIALISING: u32 = 1;
const STATE_READY: u32 = 2;

const CONTROL_OFFSET: usize = 512;
const RECEIVERS_OFFSET: usize = CONTROL_OFFSET + size_of::<Control>();
const PAGE: usize = 4096;
const TYPE_NAME_WORDS: usize = crate::options::MAX_TYPE_NAME_LEN / 8;

/// The segment header. Every field is atomic because any process may write it at any
/// time; all are written once, under the exclusive lock, before `state` turns `READY`.
#[repr(C)]
pub(crate) struct Header {
    magic: AtomicU64,
    version: AtomicU32,
    state: AtomicU32,
    total_len: AtomicU64,
    created_at_ns: AtomicU64,
    creator_pid: AtomicU64,
    family: AtomicU32,
    mode: AtomicU32,
    overflow: AtomicU32,
    max_receivers: AtomicU32,
    capacity: AtomicU64,
    record_size: AtomicU64,
    record_align: AtomicU64,
    type_name_len: AtomicU64,
    type_name: [AtomicU64; TYPE_NAME_WORDS],
    control_offset: AtomicU64,
    receivers_offset: AtomicU64,
    slots_offset: AtomicU64,
    max_producers: AtomicU64,
    producers_offset: AtomicU64,
}

const _: () = assert!(size_of::<Header>() <= CONTROL_OFFSET);
const _: () = assert!(CONTROL_OFFSET % align_of::<Control>() == 0);
const _: () = assert!(RECEIVERS_OFFSET % align_of::<ReceiverEntry>() == 0);

/// Everything that must agree between the processes sharing a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fingerprint {
    pub family: u32,
    pub mode: u32,
    pub overflow: u32,
    pub capacity: u64,
    pub record_size: u64,
    pub record_align: u64,
    pub type_name: String,
    pub max_receivers: u32,
    /// Size of the producer table: 0 for a `Route`.
    pub max_producers: u32,
}

/// Where each part of a segment starts, computed from a fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub geom: Geometry,
    pub max_receivers: usize,
    pub max_producers: usize,
    pub producers_offset: usize,
    pub slots_offset: usize,
    pub total_len: usize,
}

impl Layout {
    /// `None` if the sizes overflow or the geometry is invalid.
    pub(crate) fn new(fp: &Fingerprint) -> Option<Layout> {
        let geom = Geometry::new(
            fp.capacity,
            usize::try_from(fp.record_size).ok()?,
            usize::try_from(fp.record_align).ok()?,
        )?;
        let max_receivers = fp.max_receivers as usize;
        let producers_offset =
            RECEIVERS_OFFSET.checked_add(max_receivers.checked_mul(size_of::<ReceiverEntry>())?)?;
        let max_producers = fp.max_producers as usize;
        let producers_end =
            producers_offset.checked_add(max_producers.checked_mul(size_of::<ProducerEntry>())?)?;
        let slots_offset = producers_end.checked_next_multiple_of(PAGE.max(geom_align(fp)))?;
        let total_len = slots_offset
            .checked_add(geom.slot_words().checked_mul(8)?)?
            .checked_next_multiple_of(PAGE)?;
        // Keep every offset representable as a file offset.
        i64::try_from(total_len).ok()?;
        Some(Layout {
            geom,
            max_receivers,
            max_producers,
            producers_offset,
            slots_offset,
            total_len,
        })
    }
}

fn geom_align(fp: &Fingerprint) -> usize {
    usize::try_from(fp.record_align).unwrap_or(PAGE).max(8)
}

/// An open, validated, mapped segment. Holds the shared lock until dropped.
pub(crate) struct Segment {
    map: MmapRaw,
    /// `Overflow::Block` or unicast: producers never overwrite unread records.
    lossless: bool,
    /// `Mode::Unicast`.
    unicast: bool,
    // Kept open for the `flock` that marks this process as a participant.
    _file: File,
    path: PathBuf,
    layout: Layout,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("path", &self.path)
            .field("layout", &self.layout)
            .finish()
    }
}

/// Why the header could not be used yet.
enum Check {
    /// Not (fully) initialised: its initialiser died; take the exclusive lock and redo it.
    NotReady,
    /// A definite error.
    Fail(OpenError),
}

impl Segment {
    /// Opens the segment at `path`, creating and initialising it if needed.
    pub(crate) fn open(
        path: &Path,
        fp: &Fingerprint,
        permissions: u32,
        timeout: Duration,
    ) -> Result<Segment, OpenError> {
        let layout = Layout::new(fp).ok_or_else(|| OpenError::InvalidOption {
            option: "capacity",
            reason: "the segment would be larger than the address space".into(),
        })?;
        let start = Instant::now();
        loop {
            let file = open_file(path, permissions)?;
            let exclusive =
                try_flock(&file, libc::LOCK_EX).map_err(|e| io_err(path, "flock", e))?;
            if exclusive {
                if !same_file(&file, path) {
                    continue; // unlinked and recreated under us: start again
                }
                initialise(&file, path, fp, &layout)?;
                // Downgrade. Not atomic: another opener may slip in and (re)initialise;
                // the validation below then judges what it wrote.
                if !try_flock(&file, libc::LOCK_SH).map_err(|e| io_err(path, "flock", e))? {
                    retry_pause(path, start, timeout)?;
                    continue;
                }
            } else if !try_flock(&file, libc::LOCK_SH).map_err(|e| io_err(path, "flock", e))? {
                // An initialiser holds the exclusive lock.
                retry_pause(path, start, timeout)?;
                continue;
            }
            if !same_file(&file, path) {
                continue;
            }
            match map_and_validate(file, path, fp, &layout) {
                Ok(segment) => return Ok(segment),
                Err(Check::Fail(e)) => return Err(e),
                Err(Check::NotReady) => retry_pause(path, start, timeout)?,
            }
        }
    }

    /// The segment file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The ring inside the segment.
    pub(crate) fn view(&self) -> RingView<'_> {
        let base = self.map.as_ptr();
        // SAFETY: the mapping is `layout.total_len` bytes (checked against the file
        // size before mapping), page aligned, and lives as long as `&self`. The control
        // block, the receiver and producer tables and the slot array lie inside it (the
        // layout computed them from this side's own options) at offsets aligned for
        // their types (asserted at compile time / computed by `Layout`). They consist
        // only of atomics, valid for any bit pattern, and every process (including
        // this one) accesses that memory only through atomic operations, so shared
        // references to them are sound even while other processes write.
        unsafe {
            let ctl = &*(base.add(CONTROL_OFFSET) as *const Control);
            let receivers = std::slice::from_raw_parts(
                base.add(RECEIVERS_OFFSET) as *const ReceiverEntry,
                self.layout.max_receivers,
            );
            let producers = std::slice::from_raw_parts(
                base.add(self.layout.producers_offset) as *const ProducerEntry,
                self.layout.max_producers,
            );
            let slots = std::slice::from_raw_parts(
                base.add(self.layout.slots_offset) as *const AtomicU64,
                self.layout.geom.slot_words(),
            );
            RingView {
                ctl,
                receivers,
                producers,
                slots,
                geom: self.layout.geom,
                lossless: self.lossless,
                unicast: self.unicast,
            }
        }
    }
}

fn io_err(path: &Path, op: &'static str, source: io::Error) -> OpenError {
    if source.kind() == io::ErrorKind::PermissionDenied {
        OpenError::PermissionDenied {
            path: path.to_owned(),
            source,
        }
    } else {
        OpenError::Io {
            path: path.to_owned(),
            op,
            source,
        }
    }
}

fn retry_pause(path: &Path, start: Instant, timeout: Duration) -> Result<(), OpenError> {
    let waited = start.elapsed();
    if waited >= timeout {
        return Err(OpenError::Timeout {
            path: path.to_owned(),
            waited,
        });
    }
    std::thread::sleep(Duration::from_millis(1));
    Ok(())
}

/// Opens `path` read-write, creating it with `permissions` if it does not exist.
fn open_file(path: &Path, permissions: u32) -> Result<File, OpenError> {
    loop {
        match OpenOptions::new().read(true).write(true).open(path) {
            Ok(f) => return Ok(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(path, "open", e)),
        }
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(permissions)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
        {
            Ok(f) => {
                // The process umask may have cleared bits the caller asked for.
                f.set_permissions(std::fs::Permissions::from_mode(permissions))
                    .map_err(|e| io_err(path, "fchmod", e))?;
                return Ok(f);
            }
            // Someone created it between our two opens: open theirs.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err(path, "create", e)),
        }
    }
}

/// `flock` without blocking. `Ok(false)` if another open file holds a conflicting lock.
fn try_flock(file: &File, op: libc::c_int) -> io::Result<bool> {
    loop {
        // SAFETY: `flock` on a file descriptor we own; it touches no memory of ours.
        let rc = unsafe { libc::flock(file.as_raw_fd(), op | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(e),
        }
    }
}

/// Whether `file` is still the file `path` names (not unlinked and replaced).
fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Whether the file may be (re)initialised: empty, or already one of ours. Anything
/// else at a user-given path is left alone.
fn is_ours_or_empty(file: &File, path: &Path) -> Result<bool, OpenError> {
    let len = file.metadata().map_err(|e| io_err(path, "fstat", e))?.len();
    if len == 0 {
        return Ok(true);
    }
    let mut magic = [0u8; 8];
    let n = std::os::unix::fs::FileExt::read_at(file, &mut magic, 0)
        .map_err(|e| io_err(path, "read", e))?;
    Ok(n == 8 && u64::from_le_bytes(magic) == MAGIC)
}

/// Writes a fresh segment. Called with the exclusive lock held, i.e. with no other
/// participant alive.
fn initialise(
    file: &File,
    path: &Path,
    fp: &Fingerprint,
    layout: &Layout,
) -> Result<(), OpenError> {
    if !is_ours_or_empty(file, path)? {
        return Err(OpenError::Corrupt {
            path: path.to_owned(),
            reason: "the file exists and is not a shmchan segment; refusing to overwrite it".into(),
        });
    }
    // Truncating to 0 first zeroes every byte of a reclaimed segment. The magic goes in
    // at once, before the file grows: a creator killed at any point leaves a file that
    // is empty or marked as ours, which the next opener may re-initialise.
    file.set_len(0).map_err(|e| io_err(path, "ftruncate", e))?;
    std::os::unix::fs::FileExt::write_all_at(file, &MAGIC.to_le_bytes(), 0)
        .map_err(|e| io_err(path, "write", e))?;
    let len = layout.total_len as u64;
    let no_space = |e: &io::Error| matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EFBIG));
    let sized = file.set_len(len).and_then(|()| {
        // Reserve the memory now: on tmpfs a full /dev/shm is then ENOSPC here instead
        // of SIGBUS on first touch.
        // SAFETY: plain syscall on a file descriptor we own.
        let rc =
            unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, layout.total_len as libc::off_t) };
        match rc {
            0 | libc::EOPNOTSUPP | libc::EINVAL => Ok(()),
            rc => Err(io::Error::from_raw_os_error(rc)),
        }
    });
    if let Err(e) = sized {
        // Leave no half-made segment behind: it would only confuse the next opener.
        let _ = file.set_len(0);
        if same_file(file, path) {
            let _ = std::fs::remove_file(path);
        }
        return Err(if no_space(&e) {
            OpenError::NoSpace {
                path: path.to_owned(),
                bytes: len,
            }
        } else {
            io_err(path, "fallocate", e)
        });
    }
    let map = MmapOptions::new()
        .len(Header::SIZE)
        .map_raw(file)
        .map_err(|e| io_err(path, "mmap", e))?;
    // SAFETY: the mapping is at least `Header::SIZE` bytes, page aligned, and the
    // header is made of atomics only (see `Segment::view`).
    let header = unsafe { &*(map.as_ptr() as *const Header) };
    header.write(fp, layout);
    Ok(())
}

impl Header {
    const SIZE: usize = CONTROL_OFFSET;

    /// Fills in a zeroed header. `magic` first and `state = READY` last, so an opener
    /// can tell a half-written header from a foreign file.
    fn write(&self, fp: &Fingerprint, layout: &Layout) {
        // `Relaxed` stores: ordered before other processes' reads by the `Release`
        // store of `state` below (paired with their `Acquire` load) and, across the
        // file lock, by the kernel.
        let r = Ordering::Relaxed;
        self.magic.store(MAGIC, r);
        self.version.store(VERSION, r);
        self.state.store(STATE_INITIALISING, r);
        self.total_len.store(layout.total_len as u64, r);
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        self.created_at_ns
            .store(u64::try_from(now.as_nanos()).unwrap_or(u64::MAX), r);
        self.creator_pid.store(u64::from(std::process::id()), r);
        self.family.store(fp.family, r);
        self.mode.store(fp.mode, r);
        self.overflow.store(fp.overflow, r);
        self.max_receivers.store(fp.max_receivers, r);
        self.capacity.store(fp.capacity, r);
        self.record_size.store(fp.record_size, r);
        self.record_align.store(fp.record_align, r);
        let name = fp.type_name.as_bytes();
        self.type_name_len.store(name.len() as u64, r);
        for (word, chunk) in self.type_name.iter().zip(name.chunks(8)) {
            let mut bytes = [0u8; 8];
            bytes[..chunk.len()].copy_from_slice(chunk);
            word.store(u64::from_le_bytes(bytes), r);
        }
        self.control_offset.store(CONTROL_OFFSET as u64, r);
        self.receivers_offset.store(RECEIVERS_OFFSET as u64, r);
        self.slots_offset.store(layout.slots_offset as u64, r);
        self.max_producers.store(fp.max_producers.into(), r);
        self.producers_offset
            .store(layout.producers_offset as u64, r);
        pause_for_tests();
        self.state.store(STATE_READY, Ordering::Release);
    }

    /// The stored type name, or `None` if its length is out of range or not UTF-8.
    fn type_name(&self) -> Option<String> {
        let len = usize::try_from(self.type_name_len.load(Ordering::Relaxed)).ok()?;
        if len > crate::options::MAX_TYPE_NAME_LEN {
            return None;
        }
        let mut bytes = Vec::with_capacity(TYPE_NAME_WORDS * 8);
        for word in &self.type_name {
            bytes.extend_from_slice(&word.load(Ordering::Relaxed).to_le_bytes());
        }
        bytes.truncate(len);
        String::from_utf8(bytes).ok()
    }

    /// Compares the header with what this side expects.
    fn check(&self, path: &Path, fp: &Fingerprint, layout: &Layout) -> Result<(), Check> {
        let corrupt = |reason: String| {
            Check::Fail(OpenError::Corrupt {
                path: path.to_owned(),
                reason,
            })
        };
        if self.magic.load(Ordering::Relaxed) != MAGIC {
            return Err(corrupt("bad magic number".into()));
        }
        // `Acquire`: pairs with the initialiser's `Release` store of READY.
        if self.state.load(Ordering::Acquire) != STATE_READY {
            return Err(Check::NotReady);
        }
        let version = self.version.load(Ordering::Relaxed);
        let mismatch = |field: &'static str, expected: String, found: String| {
            Check::Fail(OpenError::Mismatch {
                path: path.to_owned(),
                field,
                expected,
                found,
            })
        };
        if version != VERSION {
            return Err(mismatch(
                "format version",
                VERSION.to_string(),
                version.to_string(),
            ));
        }
        let family = self.family.load(Ordering::Relaxed);
        if family != fp.family {
            return Err(mismatch(
                "family",
                family_name(fp.family),
                family_name(family),
            ));
        }
        let name = self
            .type_name()
            .ok_or_else(|| corrupt("unreadable type name".into()))?;
        if name != fp.type_name {
            return Err(mismatch("type name", fp.type_name.clone(), name));
        }
        let fields: [(&'static str, u64, u64); 3] = [
            (
                "record size",
                fp.record_size,
                self.record_size.load(Ordering::Relaxed),
            ),
            (
                "record alignment",
                fp.record_align,
                self.record_align.load(Ordering::Relaxed),
            ),
            (
                "capacity",
                fp.capacity,
                self.capacity.load(Ordering::Relaxed),
            ),
        ];
        for (field, expected, found) in fields {
            if expected != found {
                return Err(mismatch(field, expected.to_string(), found.to_string()));
            }
        }
        let mode = self.mode.load(Ordering::Relaxed);
        if mode != fp.mode {
            return Err(mismatch("mode", mode_name(fp.mode), mode_name(mode)));
        }
        let overflow = self.overflow.load(Ordering::Relaxed);
        if overflow != fp.overflow {
            return Err(mismatch(
                "overflow",
                overflow_name(fp.overflow),
                overflow_name(overflow),
            ));
        }
        let max = self.max_receivers.load(Ordering::Relaxed);
        if max != fp.max_receivers {
            return Err(mismatch(
                "max_receivers",
                fp.max_receivers.to_string(),
                max.to_string(),
            ));
        }
        let max = self.max_producers.load(Ordering::Relaxed);
        if max != u64::from(fp.max_producers) {
            return Err(mismatch(
                "max_producers",
                fp.max_producers.to_string(),
                max.to_string(),
            ));
        }
        let offsets = [
            (
                self.control_offset.load(Ordering::Relaxed),
                CONTROL_OFFSET as u64,
            ),
            (
                self.receivers_offset.load(Ordering::Relaxed),
                RECEIVERS_OFFSET as u64,
            ),
            (
                self.slots_offset.load(Ordering::Relaxed),
                layout.slots_offset as u64,
            ),
            (
                self.producers_offset.load(Ordering::Relaxed),
                layout.producers_offset as u64,
            ),
            (
                self.total_len.load(Ordering::Relaxed),
                layout.total_len as u64,
            ),
        ];
        if offsets.iter().any(|(found, expected)| found != expected) {
            return Err(corrupt("offsets do not match the fingerprint".into()));
        }
        Ok(())
    }
}

/// Environment variable that makes an initialiser pause (milliseconds) after writing
/// the header and before marking it ready. For crash tests only: it lets a test kill a
/// creator in the middle of initialisation. Read only while initialising a segment.
pub(crate) const TEST_INIT_PAUSE_VAR: &str = "SHMCHAN_TEST_INIT_PAUSE_MS";

fn pause_for_tests() {
    if let Some(ms) = std::env::var(TEST_INIT_PAUSE_VAR)
        .ok()
        .and_then(|v| v.parse().ok())
    {
        std::thread::sleep(Duration::from_millis(ms));
    }
}

fn family_name(code: u32) -> String {
    match code {
        1 => "Route".into(),
        2 => "Channel".into(),
        other => format!("unknown ({other})"),
    }
}

fn mode_name(code: u32) -> String {
    match code {
        1 => "Broadcast".into(),
        2 => "Unicast".into(),
        other => format!("unknown ({other})"),
    }
}

fn overflow_name(code: u32) -> String {
    match code {
        1 => "Overwrite".into(),
        2 => "Block".into(),
        other => format!("unknown ({other})"),
    }
}

/// Maps the whole segment and validates its header. Called with the shared lock held.
fn map_and_validate(
    file: File,
    path: &Path,
    fp: &Fingerprint,
    layout: &Layout,
) -> Result<Segment, Check> {
    let fail = |op, e| Check::Fail(io_err(path, op, e));
    let len = file.metadata().map_err(|e| fail("fstat", e))?.len();
    if len < Header::SIZE as u64 {
        // Created but never sized: its creator died before writing anything.
        return Err(Check::NotReady);
    }
    let header_map = MmapOptions::new()
        .len(Header::SIZE)
        .map_raw(&file)
        .map_err(|e| fail("mmap", e))?;
    // SAFETY: see `initialise`; the mapping is `Header::SIZE` bytes.
    let header = unsafe { &*(header_map.as_ptr() as *const Header) };
    header.check(path, fp, layout)?;
    if len < layout.total_len as u64 {
        return Err(Check::Fail(OpenError::Corrupt {
            path: path.to_owned(),
            reason: format!(
                "the file is {len} bytes, the layout needs {}",
                layout.total_len
            ),
        }));
    }
    drop(header_map);
    let map = MmapOptions::new()
        .len(layout.total_len)
        .populate()
        .map_raw(&file)
        .map_err(|e| fail("mmap", e))?;
    let unicast = fp.mode == crate::options::Mode::Unicast.code();
    Ok(Segment {
        map,
        lossless: unicast || fp.overflow == crate::options::Overflow::Block.code(),
        unicast,
        _file: file,
        path: path.to_owned(),
        layout: *layout,
    })
}

/// Unlinks the segment file. `Ok(false)` if there was none.
pub(crate) fn remove(path: &Path) -> Result<bool, OpenError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err(path, "unlink", e)),
    }
}

// ---------------------------------------------------------------------------------------
// Observation (issue 7): opening an existing segment of unknown record type to look at
// it, for `stats.rs` and the `shmchan` tool. Nothing above depends on this section.
//
// An observer is not a participant. It takes no shared lock, so a segment whose every
// participant died stays stale (re-creatable, removable) while `shmchan ls`/`stat` look
// at it; and it copies what it reads with `pread` into local memory instead of mapping
// the file, so a segment truncated or re-created under it gives an error, never
// `SIGBUS`. The one exception is `ObservedMap` (`shmchan tail`), which maps the slots
// read-only and therefore holds a shared lock for as long as it lives; see there.
// ---------------------------------------------------------------------------------------

/// What the header of an existing segment says. Every value was bounded, and the layout
/// was recomputed from the fingerprint with [`Layout::new`] and compared with the
/// header's stored offsets, so the layout is never taken from shared memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeaderInfo {
    pub fp: Fingerprint,
    pub layout: Layout,
    pub created_at_ns: u64,
    pub creator_pid: u64,
}

/// An existing segment, opened read-only to observe it (see the section comment).
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

    /// Maps the segment read-only for a [`broadcast::observe`](crate::ring::broadcast::observe)
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
    /// The ring, for [`broadcast::observe`](crate::ring::broadcast::observe) only: the
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
        // only user, `broadcast::observe`, performs only relaxed loads on it.
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
    let code = |field: &str, value: u32| {
        if matches!(value, 1 | 2) {
            Ok(value)
        } else {
            Err(corrupt(format!("unknown {field} code {value}")))
        }
    };
    let max_receivers = header.max_receivers.load(r);
    if max_receivers == 0 || max_receivers as usize > crate::options::MAX_RECEIVERS {
        return Err(corrupt(format!(
            "max_receivers {max_receivers} is out of range"
        )));
    }
    let max_producers = header.max_producers.load(r);
    if max_producers > crate::options::MAX_PRODUCERS as u64 {
        return Err(corrupt(format!(
            "max_producers {max_producers} is out of range"
        )));
    }
    let capacity = header.capacity.load(r);
    if capacity < 2 || !capacity.is_power_of_two() || capacity > crate::options::MAX_CAPACITY as u64
    {
        return Err(corrupt(format!("capacity {capacity} is out of range")));
    }
    let fp = Fingerprint {
        family: code("family", header.family.load(r))?,
        mode: code("mode", header.mode.load(r))?,
        overflow: code("overflow", header.overflow.load(r))?,
        capacity,
        record_size: header.record_size.load(r),
        record_align: header.record_align.load(r),
        type_name: header
            .type_name()
            .ok_or_else(|| corrupt("unreadable type name".into()))?,
        max_receivers,
        max_producers: max_producers as u32,
    };
    let layout = Layout::new(&fp).ok_or_else(|| {
        corrupt(format!(
            "record size {} / alignment {} / capacity {capacity} give no valid layout",
            fp.record_size, fp.record_align
        ))
    })?;
    // The fingerprint comes from the header itself, so this checks what is left: the
    // format version and the stored offsets against the recomputed layout.
    header.check(path, &fp, &layout).map_err(|c| match c {
        Check::Fail(e) => e,
        Check::NotReady => corrupt("not initialised".into()),
    })?;
    Ok(HeaderInfo {
        fp,
        layout,
        created_at_ns: header.created_at_ns.load(r),
        creator_pid: header.creator_pid.load(r),
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
