//! The sending half.

use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use bytemuck::Pod;

use crate::error::{OpenError, ReceiversTimeout, SendError, SendTimeoutError, TrySendError};
use crate::options::Family;
use crate::process::{self, ProcLiveness};
use crate::ring::broadcast::{self, Producer};
use crate::ring::multi::{self, SharedProducer};
use crate::ring::RingView;
use crate::segment::Segment;
use crate::sync::Ordering;
use crate::wait::{self, Wait, IDLE_TICK};

/// How many times `try_send` retries a claim that a receiver skipped (it judged this
/// producer stalled) before reporting the ring full.
const VOID_RETRIES: u32 = 64;

/// The sending half of a segment. Created by [`Route::sender`](crate::Route::sender),
/// [`Channel::sender`](crate::Channel::sender) or a [`Builder`](crate::Builder).
///
/// Dropping it releases its role: when no sender is left, receivers drain what was
/// sent and then get [`RecvError::Disconnected`](crate::RecvError::Disconnected).
pub struct Sender<T> {
    segment: Segment,
    role: Role,
    wait: Wait,
    /// Last time a blocked `try_send` checked the liveness of the receivers.
    last_liveness: Option<Instant>,
    _record: PhantomData<fn(T)>,
}

/// Which producer algorithm this sender runs.
enum Role {
    /// The one producer of a `Route` (`ring/broadcast.rs`).
    Single { producer: Producer, owner: u64 },
    /// One of the producers of a `Channel` (`ring/multi.rs`).
    Shared(SharedProducer),
}

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("path", &self.segment.path())
            .field(
                "family",
                &match self.role {
                    Role::Single { .. } => "Route",
                    Role::Shared(_) => "Channel",
                },
            )
            .field("wait", &self.wait)
            .finish()
    }
}

/// What writing a claimed slot came to.
enum Written {
    Published,
    /// A receiver skipped the claim: claim again.
    Void,
}

enum Reserve {
    Timeout,
    Disconnected,
}

impl<T: Pod> Sender<T> {
    pub(crate) fn attach(segment: Segment, family: Family, wait: Wait) -> Result<Self, OpenError> {
        let owner = process::current_owner();
        let view = segment.view();
        let role = match family {
            Family::Route => {
                if let Err(holder) = broadcast::claim_sender(&view, owner, &ProcLiveness) {
                    return Err(OpenError::SenderExists {
                        path: segment.path().to_owned(),
                        pid: process::owner_pid(holder),
                    });
                }
                Role::Single {
                    producer: Producer::attach(&view),
                    owner,
                }
            }
            Family::Channel => {
                let joined = SharedProducer::join(&view, owner).or_else(|| {
                    // Full: free the entries of dead producers and try once more.
                    multi::reap_dead_producers(&view, &ProcLiveness);
                    SharedProducer::join(&view, owner)
                });
                match joined {
                    Some(p) => Role::Shared(p),
                    None => {
                        return Err(OpenError::ProducersFull {
                            path: segment.path().to_owned(),
                            max: view.producers.len(),
                        })
                    }
                }
            }
        };
        Ok(Sender {
            segment,
            role,
            wait,
            last_liveness: None,
            _record: PhantomData,
        })
    }

    /// Whether this process still holds its sender role.
    #[inline]
    fn holds_role(role: &Role, view: &RingView<'_>) -> bool {
        match role {
            Role::Single { owner, .. } => {
                view.ctl.membership.sender.load(Ordering::Relaxed) == *owner
            }
            Role::Shared(p) => p.holds_entry(view),
        }
    }

    /// Route: is there room for the next record? Channel: claims a sequence number.
    #[inline]
    fn try_reserve(role: &mut Role, view: &RingView<'_>) -> bool {
        match role {
            Role::Single { producer, .. } => producer.has_space(view),
            Role::Shared(p) => p.try_claim(view).is_some(),
        }
    }

    /// While full: evicts dead receivers that hold a lossless broadcast ring back.
    fn evict_dead(role: &mut Role, view: &RingView<'_>) {
        match role {
            Role::Single { producer, .. } => {
                producer.evict_dead(view, &ProcLiveness);
            }
            Role::Shared(_) => {
                if view.lossless && !view.unicast {
                    let head = view.ctl.head.load(Ordering::Relaxed);
                    broadcast::evict_blocking(view, head, &ProcLiveness);
                }
            }
        }
    }

    /// Writes `value` into the reserved slot and publishes it.
    #[inline]
    fn write(role: &mut Role, view: &RingView<'_>, value: &T) -> Written {
        match role {
            Role::Single { producer, .. } => {
                producer.push(view, value);
                Written::Published
            }
            Role::Shared(p) => {
                if !p.begin(view, &ProcLiveness) {
                    return Written::Void;
                }
                p.write(view, value);
                if p.commit(view) {
                    Written::Published
                } else {
                    Written::Void
                }
            }
        }
    }

    /// Sends a record, waiting (per the [`Wait`] strategy) while a lossless ring is full.
    /// Never waits in broadcast [`Overflow::Overwrite`](crate::Overflow::Overwrite) mode.
    ///
    /// In broadcast mode, with no receiver attached the record is still written:
    /// receivers that join later start at the newest position and do not see it. In
    /// unicast mode it waits in the ring for a receiver.
    #[inline]
    pub fn send(&mut self, value: T) -> Result<(), SendError<T>> {
        // Fast path with room: one view, no wait loop, everything inlined. Anything
        // else (full, disconnected, a voided `Channel` claim) goes the full way round.
        let view = self.segment.view();
        match &mut self.role {
            Role::Single { producer, owner } => {
                if view.ctl.membership.sender.load(Ordering::Relaxed) == *owner
                    && producer.has_space(&view)
                {
                    producer.push(&view, &value);
                    return Ok(());
                }
            }
            Role::Shared(p) => {
                if p.holds_entry(&view)
                    && p.try_claim(&view).is_some()
                    && p.begin(&view, &ProcLiveness)
                {
                    p.write(&view, &value);
                    if p.commit(&view) {
                        return Ok(());
                    }
                }
            }
        }
        self.send_slow(value)
    }

    #[inline(never)]
    fn send_slow(&mut self, value: T) -> Result<(), SendError<T>> {
        match self.send_deadline(value, None) {
            Ok(()) => Ok(()),
            Err(SendTimeoutError::Disconnected(v) | SendTimeoutError::Timeout(v)) => {
                Err(SendError(v))
            }
        }
    }

    /// Sends a record if there is room now; gives it back in
    /// [`TrySendError::Full`] otherwise.
    pub fn try_send(&mut self, value: T) -> Result<(), TrySendError<T>> {
        let view = self.segment.view();
        if !Self::holds_role(&self.role, &view) {
            return Err(TrySendError::Disconnected(value));
        }
        for _ in 0..VOID_RETRIES {
            if !Self::try_reserve(&mut self.role, &view) {
                // Full: dead receivers may be what holds us back. Look at most once a
                // tick: the check reads /proc.
                let now = Instant::now();
                if self
                    .last_liveness
                    .is_none_or(|t| now.duration_since(t) >= IDLE_TICK)
                {
                    self.last_liveness = Some(now);
                    Self::evict_dead(&mut self.role, &view);
                }
                if !Self::try_reserve(&mut self.role, &view) {
                    return Err(TrySendError::Full(value));
                }
            }
            if let Written::Published = Self::write(&mut self.role, &view, &value) {
                return Ok(());
            }
        }
        Err(TrySendError::Full(value))
    }

    /// Sends a record, waiting at most `timeout` for room.
    pub fn send_timeout(&mut self, value: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        self.send_deadline(value, Some(Instant::now() + timeout))
    }

    fn send_deadline(
        &mut self,
        value: T,
        deadline: Option<Instant>,
    ) -> Result<(), SendTimeoutError<T>> {
        loop {
            match self.reserve(deadline) {
                Ok(()) => {}
                Err(Reserve::Timeout) => return Err(SendTimeoutError::Timeout(value)),
                Err(Reserve::Disconnected) => return Err(SendTimeoutError::Disconnected(value)),
            }
            let view = self.segment.view();
            if let Written::Published = Self::write(&mut self.role, &view, &value) {
                return Ok(());
            }
        }
    }

    /// Waits until the next record may be written (a `Channel` sender: claims it).
    #[inline]
    fn reserve(&mut self, deadline: Option<Instant>) -> Result<(), Reserve> {
        let view = self.segment.view();
        if !Self::holds_role(&self.role, &view) {
            return Err(Reserve::Disconnected);
        }
        if Self::try_reserve(&mut self.role, &view) {
            return Ok(());
        }
        self.reserve_slow(deadline)
    }

    #[cold]
    fn reserve_slow(&mut self, deadline: Option<Instant>) -> Result<(), Reserve> {
        let view = self.segment.view();
        let role = &mut self.role;
        let outcome = wait::wait_for(self.wait, deadline, view.space_parker(), |idle| {
            if idle {
                if !Self::holds_role(role, &view) {
                    return Some(Err(Reserve::Disconnected));
                }
                Self::evict_dead(role, &view);
            }
            Self::try_reserve(role, &view).then_some(Ok(()))
        });
        outcome.unwrap_or(Err(Reserve::Timeout))
    }

    /// Hands out the next slot to be filled in place, waiting for room like
    /// [`Sender::send`]. The record is published by [`Loan::publish`]; a loan dropped
    /// without publishing is abandoned and the slot is reused by the next send.
    ///
    /// In lossless modes (`Overflow::Block`, unicast) the loan points into the shared
    /// slot itself (zero copy): no live receiver reads a slot a producer is writing. In
    /// `Overflow::Overwrite` mode a lapped receiver may be reading that very slot, so
    /// the loan is staged in the `Loan` and copied with atomic stores on publish.
    /// Either way the slot starts with arbitrary earlier contents: set every field.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use shmchan::{Overflow, Route};
    ///
    /// let mut tx = Route::<[u64; 8]>::builder("frames").overflow(Overflow::Block).sender()?;
    /// let mut slot = tx.loan()?;
    /// slot.fill(7);
    /// slot.publish();
    /// # Ok(()) }
    /// ```
    #[inline]
    pub fn loan(&mut self) -> Result<Loan<'_, T>, SendError<()>> {
        // Fast path of a `Route` with room, as in `send`.
        if let Role::Single { producer, owner } = &mut self.role {
            let view = self.segment.view();
            if view.ctl.membership.sender.load(Ordering::Relaxed) == *owner
                && producer.has_space(&view)
            {
                let seq = producer.begin(&view);
                let place = Place::of(&view, seq);
                return Ok(Loan {
                    sender: self,
                    seq,
                    place,
                });
            }
        }
        self.loan_slow()
    }

    #[inline(never)]
    fn loan_slow(&mut self) -> Result<Loan<'_, T>, SendError<()>> {
        loop {
            self.reserve(None).map_err(|_| SendError(()))?;
            let view = self.segment.view();
            let seq = match &mut self.role {
                Role::Single { producer, .. } => producer.begin(&view),
                Role::Shared(p) => {
                    if !p.begin(&view, &ProcLiveness) {
                        continue; // skipped claim: claim again
                    }
                    p.seq()
                }
            };
            let place = Place::of(&view, seq);
            return Ok(Loan {
                sender: self,
                seq,
                place,
            });
        }
    }

    /// Number of receivers attached, after evicting those whose process died. Reads
    /// `/proc` for each: not for the hot path.
    pub fn receiver_count(&self) -> usize {
        broadcast::live_receivers(&self.segment.view(), &ProcLiveness)
    }

    /// Waits until at least `n` receivers are attached (start-up synchronisation),
    /// polling every millisecond. Returns the count reached.
    pub fn wait_for_receivers(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<usize, ReceiversTimeout> {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self.receiver_count();
            if found >= n {
                return Ok(found);
            }
            if Instant::now() >= deadline {
                return Err(ReceiversTimeout { wanted: n, found });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Sequence number the next record will get on a `Route` (the number of records
    /// published so far); on a `Channel`, the number of sequence numbers claimed by
    /// all its producers so far.
    pub fn next_seq(&self) -> u64 {
        match &self.role {
            Role::Single { producer, .. } => producer.next_seq(),
            Role::Shared(_) => self.segment.view().ctl.head.load(Ordering::Relaxed),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let view = self.segment.view();
        match &self.role {
            Role::Single { owner, .. } => broadcast::release_sender(&view, *owner),
            Role::Shared(p) => p.leave(&view),
        }
    }
}

enum Place<T> {
    /// The record words of the slot, in the mapping (lossless modes).
    Slot(*mut T),
    /// A private copy, published with atomic stores (overwrite mode).
    Staged(T),
}

impl<T: Pod> Place<T> {
    /// Where the loan of record `seq` lives: the slot itself in lossless modes, a
    /// private copy in overwrite mode (see [`Sender::loan`]).
    #[inline(always)]
    fn of(view: &RingView<'_>, seq: u64) -> Place<T> {
        if view.lossless {
            let range = view.geom.data_range(seq);
            let ptr = view.slots[range.start].as_ptr().cast::<T>();
            debug_assert!(ptr.is_aligned());
            Place::Slot(ptr)
        } else {
            Place::Staged(T::zeroed())
        }
    }
}

/// A slot lent by [`Sender::loan`], to be filled and then [published](Loan::publish).
pub struct Loan<'a, T: Pod> {
    sender: &'a mut Sender<T>,
    seq: u64,
    place: Place<T>,
}

impl<T: Pod> std::fmt::Debug for Loan<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loan")
            .field("seq", &self.seq)
            .field("in_place", &matches!(self.place, Place::Slot(_)))
            .finish()
    }
}

impl<T: Pod> Loan<'_, T> {
    /// Publishes the record: receivers can now read it.
    ///
    /// (On a `Channel`, if a receiver skipped this claim because it judged the
    /// producer dead, which a live producer is not, a staged record is sent again at
    /// a new sequence number; a record filled in place is then lost.)
    #[inline]
    pub fn publish(self) {
        let view = self.sender.segment.view();
        if let Place::Staged(value) = &self.place {
            crate::sync::store_words(
                &view.slots[view.geom.data_range(self.seq)],
                bytemuck::bytes_of(value),
            );
        }
        let published = match &mut self.sender.role {
            Role::Single { producer, .. } => {
                producer.commit(&view);
                true
            }
            Role::Shared(p) => p.commit(&view),
        };
        if let (false, Place::Staged(value)) = (published, self.place) {
            let _ = self.sender.send(value);
        }
    }
}

impl<T: Pod> Deref for Loan<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        match &self.place {
            // SAFETY: see `deref_mut`.
            Place::Slot(ptr) => unsafe { &**ptr },
            Place::Staged(value) => value,
        }
    }
}

impl<T: Pod> DerefMut for Loan<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        match &mut self.place {
            // SAFETY: `ptr` points at the record words of the slot `begin` marked busy
            // for this producer: in bounds of the mapping (masked index), aligned for
            // `T` (the slot array is page aligned and the geometry aligns records to
            // `align_of::<T>()`), and any bit pattern is a valid `T` (Pod). The mapping
            // outlives the loan, which borrows the sender. Lossless modes give
            // exclusive access: the producer gated this slot on its previous record
            // having been read by every live receiver (broadcast, `Acquire` on their
            // cursors) or consumed (unicast, `Acquire` on the stamp), no receiver reads
            // a busy slot before the `Release` stamp store of `commit`, and no other
            // producer writes a slot while it is busy for this one.
            Place::Slot(ptr) => unsafe { &mut **ptr },
            Place::Staged(value) => value,
        }
    }
}
