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
use crate::segment::{Explicit, Fingerprint, Request, Segment};
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
            /// Opens (or creates) the segment `name` as a sender, setting no option: an
            /// existing segment's options are adopted, a new one gets the defaults (see
            /// [`Builder`]).
            pub fn sender(name: &str) -> Result<Sender<T>, OpenError> {
                Self::builder(name).sender()
            }

            /// Opens (or creates) the segment `name` as a receiver, setting no option: an
            /// existing segment's options are adopted, a new one gets the defaults (see
            /// [`Builder`]).
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
/// # Opening adopts, creating decides
///
/// Both sides open-or-create, and whichever starts first creates the segment. The
/// segment options are [`capacity`](Builder::capacity), [`mode`](Builder::mode),
/// [`overflow`](Builder::overflow), [`max_receivers`](Builder::max_receivers) and
/// (`Channel`) [`max_producers`](Builder::max_producers):
///
/// - an option **set** on the builder is checked against an existing segment: a
///   different value there is [`OpenError::Mismatch`] naming the field (and both
///   values);
/// - an option **left unset** takes the existing segment's value, or the default when
///   this side creates the segment;
/// - the family (`Route` or `Channel`) and the record type (its size, alignment and
///   type name or [`schema`](Builder::schema)) are **always** checked.
///
/// So a subscriber opens a feed with no options and gets whatever its producer chose;
/// the handle tells what it adopted ([`Receiver::capacity`](crate::Receiver::capacity),
/// `mode`, `overflow`, `max_receivers`). The side whose options matter should set them
/// and, if the other side may start first, both should: a receiver that creates the
/// segment with the defaults makes a producer that asks for other values fail with
/// `Mismatch`.
///
/// "Existing" means a segment some process has open. A segment whose every participant
/// died is re-created by the next opener with that opener's options (the defaults for
/// those it left unset), as if there were none. The options of an open handle are
/// those of the segment it validated when it joined: a segment removed and re-created
/// with other options between two opens is judged afresh by the second. The wait
/// strategy, the permission bits and the open timeout belong to the handle or to the
/// creation, not to the segment, and are never compared.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use shmchan::{Mode, OpenError, Overflow, Route};
///
/// # let name = format!("doc-adopt-{}", std::process::id());
/// // The producer decides...
/// let mut tx = Route::<u64>::builder(&name).capacity(1 << 16).sender()?;
/// // ...a receiver that sets nothing adopts its options...
/// let mut rx = Route::<u64>::receiver(&name)?;
/// assert_eq!(rx.capacity(), 1 << 16);
/// assert_eq!((rx.mode(), rx.overflow()), (Mode::Broadcast, Overflow::Overwrite));
/// tx.send(7)?;
/// assert_eq!(rx.recv()?, 7);
/// // ...and one that sets an option gets it checked.
/// let other = Route::<u64>::builder(&name).capacity(1 << 10).receiver();
/// assert!(matches!(other, Err(OpenError::Mismatch { field: "capacity", .. })));
/// // The record type is always checked.
/// let wrong = Route::<u32>::receiver(&name);
/// assert!(matches!(wrong, Err(OpenError::Mismatch { field: "type name", .. })));
/// # drop((tx, rx)); Route::<u64>::remove(&name)?;
/// # Ok(()) }
/// ```
///
/// Every option at once:
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
    // The segment options: `None` adopts an existing segment's value (the default
    // when creating); see "Opening adopts, creating decides" above.
    capacity: Option<usize>,
    mode: Option<Mode>,
    overflow: Option<Overflow>,
    wait: Wait,
    max_receivers: Option<usize>,
    max_producers: Option<usize>,
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
            capacity: None,
            mode: None,
            overflow: None,
            wait: Wait::default(),
            max_receivers: None,
            max_producers: None,
            path: None,
            schema: None,
            permissions: DEFAULT_PERMISSIONS,
            open_timeout: DEFAULT_OPEN_TIMEOUT,
            layout,
            _record: PhantomData,
        }
    }

    /// Number of slots in the ring: a power of two from 2 to 2^32. Unset: the
    /// segment's, or 4096 when creating.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = Some(capacity);
        self
    }

    /// Broadcast or unicast. Unset: the segment's, or broadcast when creating. Unicast
    /// is always lossless: its producers wait while the ring is full, whatever
    /// [`Builder::overflow`] says (an overflow set explicitly is not compared with a
    /// unicast segment's).
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = Some(mode);
        self
    }

    /// What a broadcast producer does when a receiver is a ring behind. Unset: the
    /// segment's, or [`Overflow::Overwrite`] when creating.
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = Some(overflow);
        self
    }

    /// How this handle waits. Default [`Wait::Adaptive`]. Per handle: not part of the
    /// segment, never compared.
    pub fn wait(mut self, wait: Wait) -> Self {
        self.wait = wait;
        self
    }

    /// Size of the receiver table: 1 to 65536. Unset: the segment's, or 64 when
    /// creating.
    pub fn max_receivers(mut self, max: usize) -> Self {
        self.max_receivers = Some(max);
        self
    }

    /// Size of a `Channel`'s producer table: 1 to 4096. Unset: the segment's, or 64
    /// when creating. (A `Route` has one producer and ignores it.)
    pub fn max_producers(mut self, max: usize) -> Self {
        self.max_producers = Some(max);
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
        // Only what was set is validated: the defaults are valid, and an adopted value
        // is validated with the rest of the header it comes from.
        if let Some(capacity) = self.capacity {
            if capacity < 2 || !capacity.is_power_of_two() || capacity > MAX_CAPACITY {
                return invalid(
                    "capacity",
                    format!("{capacity} is not a power of two from 2 to 2^32"),
                );
            }
        }
        if let Some(max) = self.max_receivers {
            if max == 0 || max > MAX_RECEIVERS {
                return invalid(
                    "max_receivers",
                    format!("{max} is not from 1 to {MAX_RECEIVERS}"),
                );
            }
        }
        if let Some(max) = self.max_producers {
            if max == 0 || max > MAX_PRODUCERS {
                return invalid(
                    "max_producers",
                    format!("{max} is not from 1 to {MAX_PRODUCERS}"),
                );
            }
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
        let mode = self.mode.unwrap_or_default();
        // Unicast is lossless whatever the builder says; record it so in the header.
        let overflow = match mode {
            Mode::Unicast => Overflow::Block,
            Mode::Broadcast => self.overflow.unwrap_or_default(),
        };
        let request = Request {
            // What this side creates if no live segment exists.
            create: Fingerprint {
                family: self.family.code(),
                mode: mode.code(),
                overflow: overflow.code(),
                capacity: self.capacity.unwrap_or(DEFAULT_CAPACITY) as u64,
                record_size: self.layout.size() as u64,
                record_align: self.layout.align() as u64,
                type_name: type_name.clone(),
                max_receivers: self.max_receivers.unwrap_or(DEFAULT_MAX_RECEIVERS) as u32,
                max_producers: match self.family {
                    Family::Route => 0,
                    Family::Channel => self.max_producers.unwrap_or(DEFAULT_MAX_PRODUCERS) as u32,
                },
            },
            explicit: Explicit {
                mode: self.mode.is_some(),
                overflow: self.overflow.is_some(),
                capacity: self.capacity.is_some(),
                max_receivers: self.max_receivers.is_some(),
                // A `Route` ignores it (and its header says 0, validated).
                max_producers: self.max_producers.is_some() && self.family == Family::Channel,
            },
        };
        let path = self
            .path
            .unwrap_or_else(|| options::default_path(&self.name));
        let segment = Segment::open(&path, &request, self.permissions, self.open_timeout)?;
        Ok((segment, self.layout.with_schema(&type_name)))
    }
}
