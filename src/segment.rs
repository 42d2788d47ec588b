//! The segment: a file in `/dev/shm` (or at a user-given path) mapped shared, holding a
//! header, a ring control block, the receiver table and the slots.
//!
//! # Layout
//!
//! ```text
//! offset 0      Header        magic, version, state, fingerprint, offsets (< 512 B)
//! offset 512    Control       head | data futex | space futex | membership (4 x 128 B)
//! offset 1024   receivers     max_receivers x ReceiverEntry (128 B each)
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
use crate::layout::{Control, Geometry, ReceiverEntry};
use crate::ring::RingView;
use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// `b"SHMCHAN\x01"` as a little-endian word.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"SHMCHAN\x01");
/// Layout version; bumped on any incompatible change of this file's structures.
pub(crate) const VERSION: u32 = 1;

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
}

/// Where each part of a segment starts, computed from a fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub geom: Geometry,
    pub max_receivers: usize,
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
        let receivers_end =
            RECEIVERS_OFFSET.checked_add(max_receivers.checked_mul(size_of::<ReceiverEntry>())?)?;
        let slots_offset = receivers_end.checked_next_multiple_of(PAGE.max(geom_align(fp)))?;
        let total_len = slots_offset
            .checked_add(geom.slot_words().checked_mul(8)?)?
            .checked_next_multiple_of(PAGE)?;
        // Keep every offset representable as a file offset.
        i64::try_from(total_len).ok()?;
        Some(Layout {
            geom,
            max_receivers,
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
    pub(crate) fn view(&self, lossless: bool) -> RingView<'_> {
        let base = self.map.as_ptr();
        // SAFETY: the mapping is `layout.total_len` bytes (checked against the file
        // size before mapping), page aligned, and lives as long as `&self`. The control
        // block, receiver table and slot array lie inside it at offsets aligned for
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
            let slots = std::slice::from_raw_parts(
                base.add(self.layout.slots_offset) as *const AtomicU64,
                self.layout.geom.slot_words(),
            );
            RingView {
                ctl,
                receivers,
                slots,
                geom: self.layout.geom,
                lossless,
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
    // Truncating to 0 first zeroes every byte of a reclaimed segment.
    file.set_len(0).map_err(|e| io_err(path, "ftruncate", e))?;
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
    Ok(Segment {
        map,
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
