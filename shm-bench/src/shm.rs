//! Raw shared memory for the benchmark's own use: the control block (barrier) and the
//! floor transports. A file under /dev/shm mapped with `memmap2::MmapRaw`.

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use memmap2::MmapRaw;

/// A shared mapping of a whole file.
pub struct Region {
    map: MmapRaw,
    _file: File,
}

impl Region {
    /// Creates (or truncates) `path` with `len` zero bytes and maps it.
    pub fn create(path: &Path, len: usize) -> Result<Region> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .with_context(|| format!("create {}", path.display()))?;
        file.set_len(len as u64)
            .with_context(|| format!("size {}", path.display()))?;
        Self::map(file, path)
    }

    /// Maps an existing file.
    pub fn open(path: &Path) -> Result<Region> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .with_context(|| format!("open {}", path.display()))?;
        Self::map(file, path)
    }

    fn map(file: File, path: &Path) -> Result<Region> {
        let map = MmapRaw::map_raw(&file).with_context(|| format!("mmap {}", path.display()))?;
        Ok(Region { map, _file: file })
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// A reference to a `T` at byte `offset`.
    ///
    /// `T` must be made only of atomics (or other types valid for any bit pattern and
    /// safe to share): other processes write the same memory concurrently.
    pub fn at<T: SharedPlain>(&self, offset: usize) -> &T {
        assert!(
            offset + size_of::<T>() <= self.len(),
            "region too small: {} + {} > {}",
            offset,
            size_of::<T>(),
            self.len()
        );
        // SAFETY: the range lies inside the live mapping (asserted above) and the map
        // is page aligned; alignment of the offset is asserted next.
        let ptr = unsafe { self.map.as_mut_ptr().add(offset) };
        assert!(ptr.cast::<T>().is_aligned(), "misaligned shared field");
        // SAFETY: in bounds, aligned, and `T: SharedPlain` is valid for every bit
        // pattern (zero-filled file included) and only accessed through atomics or
        // volatile/raw copies, so a shared reference is sound while the map lives,
        // which it does for the lifetime of `&self`.
        unsafe { &*ptr.cast::<T>() }
    }

    /// Raw pointer to byte `offset` (for payload slots copied with raw reads/writes).
    pub fn ptr(&self, offset: usize) -> *mut u8 {
        assert!(offset <= self.len(), "offset beyond region");
        // SAFETY: `offset` is within the mapping (asserted).
        unsafe { self.map.as_mut_ptr().add(offset) }
    }
}

/// Types that may be viewed in memory shared with other processes.
///
/// # Safety
/// Every bit pattern must be a valid value, and all mutation must go through interior
/// atomics.
pub unsafe trait SharedPlain {}

/// The control block shared by the children of one measurement: a barrier.
#[repr(C)]
pub struct Ctl {
    arrived: AtomicU32,
    failed: AtomicU32,
}

// SAFETY: only atomics.
unsafe impl SharedPlain for Ctl {}

/// Size of the control file.
pub const CTL_LEN: usize = 4096;

impl Ctl {
    /// Waits until `parties` processes have each called this `round` times (rounds
    /// count from 1). Fails after `timeout` or when another party reported failure.
    pub fn barrier(&self, parties: u32, round: u32, timeout: Duration) -> Result<()> {
        // `AcqRel`: what each party did before arriving is visible after the wait.
        self.arrived.fetch_add(1, Ordering::AcqRel);
        let target = parties * round;
        let deadline = Instant::now() + timeout;
        let mut spins = 0u32;
        loop {
            if self.failed.load(Ordering::Acquire) != 0 {
                bail!("another benchmark process failed");
            }
            if self.arrived.load(Ordering::Acquire) >= target {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("start-up barrier timed out (round {round}, {parties} processes)");
            }
            spins += 1;
            if spins < 1000 {
                std::hint::spin_loop();
            } else {
                std::thread::sleep(Duration::from_micros(100));
            }
        }
    }

    /// Tells the other parties to give up.
    pub fn fail(&self) {
        self.failed.store(1, Ordering::Release);
    }
}
