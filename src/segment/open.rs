//! Opening a segment as a participant: creating, initialising and reclaiming it under
//! the `flock` protocol, validating and mapping it, and removing it.
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
//! # Adopting an existing segment's options
//!
//! An opener creates (or reclaims) with its [`Request`]'s fingerprint: its explicit
//! options and the defaults for the rest. Whoever created the segment, the opener then
//! judges it only under the shared lock, which no initialiser can hold at the same
//! time: it validates the whole header as untrusted input (`Header::validate`: every
//! value bounded, the layout recomputed from the stated fingerprint and compared with
//! the stored offsets), compares it with the request (`Request::check`: family and
//! record type always, options only where set explicitly), checks the file length
//! against the recomputed layout, and maps exactly that layout. So the geometry a
//! handle uses is the one validated under the lock it holds for its whole life: a
//! segment created by someone else between our open and our create, or unlinked and
//! re-created with other options between two opens, is judged by what it is when we
//! join it, never by what an earlier look at it said.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use memmap2::{MmapOptions, MmapRaw};

use super::file::{io_err, is_ours_or_empty, retry_pause, same_file, try_flock};
use super::header::{
    Check, Fingerprint, Header, Layout, Request, CONTROL_OFFSET, MAGIC, RECEIVERS_OFFSET,
};
use super::pid_ns::check_pid_namespace;
use crate::error::OpenError;
use crate::layout::{Control, ProducerEntry, ReceiverEntry};
use crate::options::{Mode, Overflow};
use crate::ring::RingView;
use crate::sync::AtomicU64;

/// An open, validated, mapped segment. Holds the shared lock until dropped.
pub(crate) struct Segment {
    /// The ring inside the mapping, built once (every send and receive uses it). Its
    /// references point into `map`, which does not move when the `Segment` does and is
    /// unmapped only when the `Segment` drops; [`Segment::view`] hands it out with the
    /// lifetime of a borrow of the `Segment`, never `'static`.
    ring: RingView<'static>,
    // The mapping `ring` points into: unmapped when the `Segment` drops.
    _map: MmapRaw,
    // Kept open for the `flock` that marks this process as a participant.
    _file: File,
    path: PathBuf,
    layout: Layout,
    /// The fingerprint validated when the segment was opened (its options, adopted or
    /// checked). Local memory: never re-read from the header.
    fp: Fingerprint,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("path", &self.path)
            .field("layout", &self.layout)
            .field("fingerprint", &self.fp)
            .finish()
    }
}

impl Segment {
    /// Opens the segment at `path`, creating and initialising it if needed.
    /// `request` says what to create with and which options to check.
    pub(crate) fn open(
        path: &Path,
        request: &Request,
        permissions: u32,
        timeout: Duration,
    ) -> Result<Segment, OpenError> {
        let create = Layout::new(&request.create).ok_or_else(|| OpenError::InvalidOption {
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
                initialise(&file, path, &request.create, &create)?;
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
            match map_and_validate(file, path, request) {
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

    /// Number of slots, as validated on open.
    pub(crate) fn capacity(&self) -> usize {
        // At most 2^32 (validated), and the slot array of that many slots fits in
        // the address space (`Layout::new`), so the cast is lossless.
        self.layout.geom.capacity as usize
    }

    /// The mode, as validated on open.
    pub(crate) fn mode(&self) -> Mode {
        if self.fp.mode == Mode::Unicast.code() {
            Mode::Unicast
        } else {
            Mode::Broadcast
        }
    }

    /// The overflow policy as it acts: `Block` for every unicast segment.
    pub(crate) fn overflow(&self) -> Overflow {
        if self.mode() == Mode::Unicast || self.fp.overflow == Overflow::Block.code() {
            Overflow::Block
        } else {
            Overflow::Overwrite
        }
    }

    /// Size of the receiver table, as validated on open.
    pub(crate) fn max_receivers(&self) -> usize {
        self.layout.max_receivers
    }

    /// The ring inside the segment.
    #[inline(always)]
    pub(crate) fn view(&self) -> &RingView<'_> {
        // Shortens `'static` to the borrow of `self` (covariance): the mapping lives as
        // long as `self`.
        &self.ring
    }
}

/// The ring inside the mapping `map` of `layout`, with references valid for as long as
/// the mapping is not unmapped (the caller ties them to the `Segment` that owns it).
fn ring_of(map: &MmapRaw, layout: &Layout, lossless: bool, unicast: bool) -> RingView<'static> {
    let base = map.as_ptr();
    // SAFETY: the mapping is `layout.total_len` bytes (checked against the file size
    // before mapping), page aligned, and stays mapped at the same address until the
    // `Segment` that owns it drops; the references made here are handed out only for
    // borrows of that `Segment` (`Segment::view`), so they never outlive the mapping,
    // although their type says `'static`. The control block, the receiver and producer
    // tables and the slot array lie inside it (the layout was recomputed from the
    // validated header's fingerprint, never read from shared memory, and matched its
    // stored offsets and the file length under the shared lock) at offsets aligned for their types (asserted at compile time
    // / computed by `Layout`). They consist only of atomics, valid for any bit pattern,
    // and every process (including this one) accesses that memory only through atomic
    // operations (or, for the bulk copy, assembly that amounts to them: ring/bulk.rs;
    // or reads of a record no one writes while it is held: `RecvRef`), so shared
    // references to them are sound even while other processes write.
    unsafe {
        let ctl = &*(base.add(CONTROL_OFFSET) as *const Control);
        let receivers = std::slice::from_raw_parts(
            base.add(RECEIVERS_OFFSET) as *const ReceiverEntry,
            layout.max_receivers,
        );
        let producers = std::slice::from_raw_parts(
            base.add(layout.producers_offset) as *const ProducerEntry,
            layout.max_producers,
        );
        let slots = std::slice::from_raw_parts(
            base.add(layout.slots_offset) as *const AtomicU64,
            layout.geom.slot_words(),
        );
        RingView {
            ctl,
            receivers,
            producers,
            slots,
            geom: layout.geom,
            lossless,
            unicast,
        }
    }
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

/// Validates the header, checks it against `request`, and maps the whole segment with
/// the layout recomputed from the validated header. Called with the shared lock held,
/// so no initialiser can rewrite the header or resize the file meanwhile (see the
/// module doc).
fn map_and_validate(file: File, path: &Path, request: &Request) -> Result<Segment, Check> {
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
    let (fp, layout) = header.validate(path)?;
    request.check(path, &fp).map_err(Check::Fail)?;
    // Liveness is judged by pid, which means nothing across pid namespaces.
    check_pid_namespace(path, header.pid_namespace()).map_err(Check::Fail)?;
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
    let unicast = fp.mode == Mode::Unicast.code();
    let lossless = unicast || fp.overflow == Overflow::Block.code();
    Ok(Segment {
        ring: ring_of(&map, &layout, lossless, unicast),
        _map: map,
        _file: file,
        path: path.to_owned(),
        layout,
        fp,
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
