//! `Route<T>`, `Channel<T>` and the builder that opens their segments.

use std::marker::PhantomData;
use std::path::PathBuf;
use std::time::Duration;

use bytemuck::Pod;

use crate::error::OpenError;
use crate::options::{
    self, Family, Mode, Overflow, DEFAULT_CAPACITY, DEFAULT_MAX_PRODUCERS, DEFAULT_MAX_RECEIVERS,
    DEFAULT_OPEN_TIMEOUT, DEFAULT_PERMISSIONS, MAX_CAPACITY, MAX_PRODUCERS, MAX_RECEIVERS,
};
use crate::raw::{RawReceiver, RawSender, RecordLayout};
use crate::receiver::Receiver;
use crate::segment::{Fingerprint, Segment};
use crate::sender::Sender;
use crate::wait::Wait;

/// One producer, many receivers.
///
/// Exactly one live sender may be attached to a `Route` at a time, across processes; a
/// sender whose process died is replaced by the next one that opens it.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use shmchan::Route;
///
/// let mut tx = Route::<u64>::sender("ticks")?;
/// tx.send(42)?;
/// # Ok(()) }
/// ```
pub struct Route<T>(PhantomData<fn() -> T>);

/// Many producers, many receivers.
///
/// Any number of senders (up to `max_producers`, default 64) claim sequence numbers
/// without locks; receivers get each producer's records in the order it sent them. A
/// producer killed between claiming a slot and publishing it does not stall the
/// receivers: they skip its claim after a liveness tick.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use shmchan::{Channel, Mode};
///
/// // In each strategy process:
/// let mut orders = Channel::<[u64; 4]>::builder("orders").mode(Mode::Unicast).sender()?;
/// orders.send([1, 2, 3, 4])?;
/// // In the gateway:
/// let mut gateway = Channel::<[u64; 4]>::builder("orders").mode(Mode::Unicast).receiver()?;
/// let order = gateway.recv()?;
/// # Ok(()) }
/// ```
pub struct Channel<T>(PhantomData<fn() -> T>);

macro_rules! family_api {
    ($ty:ident, $family:expr) => {
        impl<T: Pod> $ty<T> {
            /// Opens (or creates) the segment `name` as a sender, with the default options.
            pub fn sender(name: &str) -> Result<Sender<T>, OpenError> {
                Self::builder(name).sender()
            }

            /// Opens (or creates) the segment `name` as a receiver, with the default options.
            pub fn receiver(name: &str) -> Result<Receiver<T>, OpenError> {
                Self::builder(name).receiver()
            }

            /// A builder for every option of the segment `name`.
            pub fn builder(name: &str) -> Builder<T> {
                Builder::new(name, $family)
            }

            /// Unlinks the segment `name` from `/dev/shm`. Processes that have it open
            /// keep working on their mapping; the next open creates a new segment.
            /// Returns whether there was a segment to remove.
            pub fn remove(name: &str) -> Result<bool, OpenError> {
                options::validate_name(name)?;
                crate::segment::remove(&options::default_path(name))
            }
        }

        impl<T> std::fmt::Debug for $ty<T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(stringify!($ty))
            }
        }
    };
}

family_api!(Route, Family::Route);
family_api!(Channel, Family::Channel);

/// Every option of a segment, then `.sender()` or `.receiver()`.
///
/// Both sides open-or-create: whichever starts first creates the segment with its
/// options, and the other must ask for the same capacity, mode, overflow policy,
/// receiver table size and record type, or gets [`OpenError::Mismatch`] naming the
/// field. The wait strategy is per handle and need not match.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use shmchan::{Mode, Overflow, Route, Wait};
///
/// let mut tx = Route::<[u64; 8]>::builder("telemetry")
///     .capacity(1 << 16)
///     .mode(Mode::Broadcast)
///     .overflow(Overflow::Block)
///     .wait(Wait::Spin)
///     .max_receivers(256)
///     .permissions(0o660)
///     .sender()?;
/// tx.send([0; 8])?;
/// # Ok(()) }
/// ```
pub struct Builder<T> {
    name: String,
    family: Family,
    capacity: usize,
    mode: Mode,
    overflow: Overflow,
    wait: Wait,
    max_receivers: usize,
    max_producers: usize,
    path: Option<PathBuf>,
    schema: Option<String>,
    permissions: u32,
    open_timeout: Duration,
    /// The records: `T`'s layout, or the one a raw open gave.
    layout: RecordLayout,
    _record: PhantomData<fn() -> T>,
}

// By hand: a derive would require `T: Clone`.
impl<T> Clone for Builder<T> {
    fn clone(&self) -> Self {
        Builder {
            name: self.name.clone(),
            family: self.family,
            capacity: self.capacity,
            mode: self.mode,
            overflow: self.overflow,
            wait: self.wait,
            max_receivers: self.max_receivers,
            max_producers: self.max_producers,
            path: self.path.clone(),
            schema: self.schema.clone(),
            permissions: self.permissions,
            open_timeout: self.open_timeout,
            layout: self.layout.clone(),
            _record: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Builder<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("name", &self.name)
            .field("family", &self.family)
            .field("capacity", &self.capacity)
            .field("mode", &self.mode)
            .field("overflow", &self.overflow)
            .field("wait", &self.wait)
            .field("max_receivers", &self.max_receivers)
            .field("max_producers", &self.max_producers)
            .field("path", &self.path)
            .field("layout", &self.layout)
            .field("schema", &self.schema)
            .field("permissions", &format_args!("{:o}", self.permissions))
            .finish()
    }
}

impl<T: Pod> Builder<T> {
    fn new(name: &str, family: Family) -> Self {
        Self::with_layout(name, family, RecordLayout::of::<T>())
    }

    /// Opens the segment as its sender.
    pub fn sender(self) -> Result<Sender<T>, OpenError> {
        let (wait, family) = (self.wait, self.family);
        let (segment, layout) = self.open()?;
        Sender::attach(segment, family, wait, layout)
    }

    /// Opens the segment as one more receiver.
    pub fn receiver(self) -> Result<Receiver<T>, OpenError> {
        let wait = self.wait;
        let (segment, layout) = self.open()?;
        Receiver::attach(segment, wait, layout)
    }
}

impl Builder<crate::raw::Raw> {
    /// Opens the segment as its sender, with records as bytes.
    pub fn sender(self) -> Result<RawSender, OpenError> {
        let (wait, family) = (self.wait, self.family);
        let (segment, layout) = self.open()?;
        RawSender::attach(segment, family, wait, layout)
    }

    /// Opens the segment as one more receiver, with records as bytes.
    pub fn receiver(self) -> Result<RawReceiver, OpenError> {
        let wait = self.wait;
        let (segment, layout) = self.open()?;
        RawReceiver::attach(segment, wait, layout)
    }
}

impl<T> Builder<T> {
    pub(crate) fn with_layout(name: &str, family: Family, layout: RecordLayout) -> Self {
        Builder {
            name: name.to_owned(),
            family,
            capacity: DEFAULT_CAPACITY,
            mode: Mode::default(),
            overflow: Overflow::default(),
            wait: Wait::default(),
            max_receivers: DEFAULT_MAX_RECEIVERS,
            max_producers: DEFAULT_MAX_PRODUCERS,
            path: None,
            schema: None,
            permissions: DEFAULT_PERMISSIONS,
            open_timeout: DEFAULT_OPEN_TIMEOUT,
            layout,
            _record: PhantomData,
        }
    }

    /// Number of slots in the ring: a power of two from 2 to 2^32. Default 4096.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Broadcast (default) or unicast. Unicast is always lossless: its producers wait
    /// while the ring is full, whatever [`Builder::overflow`] says.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// What a broadcast producer does when a receiver is a ring behind. Default
    /// [`Overflow::Overwrite`].
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }

    /// How this handle waits. Default [`Wait::Adaptive`].
    pub fn wait(mut self, wait: Wait) -> Self {
        self.wait = wait;
        self
    }

    /// Size of the receiver table: 1 to 65536. Default 64.
    pub fn max_receivers(mut self, max: usize) -> Self {
        self.max_receivers = max;
        self
    }

    /// Size of a `Channel`'s producer table: 1 to 4096. Default 64. (A `Route` has
    /// one producer and ignores it.)
    pub fn max_producers(mut self, max: usize) -> Self {
        self.max_producers = max;
        self
    }

    /// Put the segment in this file instead of `/dev/shm/shmchan.NAME`, e.g. on a
    /// hugetlbfs mount. The name is still validated and used in messages.
    pub fn path(mut self, path: impl Into<PathBuf>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// The record type's identity in the header, instead of its Rust name without
    /// module path. Lets programs that share a layout but not a crate talk.
    pub fn schema(mut self, schema: &str) -> Self {
        self.schema = Some(schema.to_owned());
        self
    }

    /// Permission bits of the segment file if this side creates it. Default `0o600`.
    pub fn permissions(mut self, mode: u32) -> Self {
        self.permissions = mode;
        self
    }

    /// How long to wait for another process that is initialising the segment. Default
    /// 5 seconds.
    pub fn open_timeout(mut self, timeout: Duration) -> Self {
        self.open_timeout = timeout;
        self
    }

    fn open(self) -> Result<(Segment, RecordLayout), OpenError> {
        options::validate_name(&self.name)?;
        // Before any handle runs a light fence (barrier.rs).
        crate::barrier::init();
        let invalid = |option, reason: String| Err(OpenError::InvalidOption { option, reason });
        if self.capacity < 2 || !self.capacity.is_power_of_two() || self.capacity > MAX_CAPACITY {
            return invalid(
                "capacity",
                format!("{} is not a power of two from 2 to 2^32", self.capacity),
            );
        }
        if self.max_receivers == 0 || self.max_receivers > MAX_RECEIVERS {
            return invalid(
                "max_receivers",
                format!("{} is not from 1 to {MAX_RECEIVERS}", self.max_receivers),
            );
        }
        if self.max_producers == 0 || self.max_producers > MAX_PRODUCERS {
            return invalid(
                "max_producers",
                format!("{} is not from 1 to {MAX_PRODUCERS}", self.max_producers),
            );
        }
        if self.permissions & !0o777 != 0 {
            return invalid(
                "permissions",
                format!("{:o} has bits beyond 0o777", self.permissions),
            );
        }
        if self.layout.align() > crate::layout::Geometry::MAX_ALIGN {
            return invalid(
                "T",
                format!("alignment {} exceeds 4096", self.layout.align()),
            );
        }
        let type_name = match &self.schema {
            Some(schema) => schema.clone(),
            None => self.layout.schema().to_owned(),
        };
        if type_name.is_empty() || type_name.len() > options::MAX_TYPE_NAME_LEN {
            return invalid(
                "schema",
                format!(
                    "{type_name:?} must be 1 to {} bytes (set .schema() for long type names)",
                    options::MAX_TYPE_NAME_LEN
                ),
            );
        }
        // Unicast is lossless whatever the builder says; record it so in the header.
        let overflow = match self.mode {
            Mode::Unicast => Overflow::Block,
            Mode::Broadcast => self.overflow,
        };
        let fp = Fingerprint {
            family: self.family.code(),
            mode: self.mode.code(),
            overflow: overflow.code(),
            capacity: self.capacity as u64,
            record_size: self.layout.size() as u64,
            record_align: self.layout.align() as u64,
            type_name: type_name.clone(),
            max_receivers: self.max_receivers as u32,
            max_producers: match self.family {
                Family::Route => 0,
                Family::Channel => self.max_producers as u32,
            },
        };
        let path = self
            .path
            .unwrap_or_else(|| options::default_path(&self.name));
        let segment = Segment::open(&path, &fp, self.permissions, self.open_timeout)?;
        Ok((segment, self.layout.with_schema(&type_name)))
    }
}
