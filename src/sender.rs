//! The sending half.

use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use bytemuck::Pod;

use crate::error::{OpenError, ReceiversTimeout, SendError, SendTimeoutError, TrySendError};
use crate::process::{self, ProcLiveness};
use crate::ring::broadcast::{self, Producer};
use crate::segment::Segment;
use crate::sync::Ordering;
use crate::wait::{self, Wait, IDLE_TICK};

/// The sending half of a segment. Created by [`Route::sender`](crate::Route::sender) or
/// a [`Builder`](crate::Builder).
///
/// Dropping it releases the sender role: receivers drain what was sent and then get
/// [`RecvError::Disconnected`](crate::RecvError::Disconnected).
pub struct Sender<T> {
    segment: Segment,
    producer: Producer,
    owner: u64,
    lossless: bool,
    wait: Wait,
    /// Last time a blocked `try_send` checked the liveness of the receivers.
    last_liveness: Option<Instant>,
    _record: PhantomData<fn(T)>,
}

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("path", &self.segment.path())
            .field("next_seq", &self.producer.next_seq())
            .field("lossless", &self.lossless)
            .field("wait", &self.wait)
            .finish()
    }
}

impl<T: Pod> Sender<T> {
    pub(crate) fn attach(segment: Segment, lossless: bool, wait: Wait) -> Result<Self, OpenError> {
        let owner = process::current_owner();
        let view = segment.view(lossless);
        if let Err(holder) = broadcast::claim_sender(&view, owner, &ProcLiveness) {
            return Err(OpenError::SenderExists {
                path: segment.path().to_owned(),
                pid: process::owner_pid(holder),
            });
        }
        let producer = Producer::attach(&view);
        Ok(Sender {
            segment,
            producer,
            owner,
            lossless,
            wait,
            last_liveness: None,
            _record: PhantomData,
        })
    }

    /// Whether this process still holds the sender role.
    #[inline]
    fn holds_role(&self) -> bool {
        let view = self.segment.view(self.lossless);
        view.ctl.membership.sender.load(Ordering::Relaxed) == self.owner
    }

    /// Sends a record, waiting (per the [`Wait`] strategy) while a lossless ring is full.
    /// Never waits in [`Overflow::Overwrite`](crate::Overflow::Overwrite) mode.
    ///
    /// With no receiver attached the record is still written: receivers that join
    /// later start at the newest position and do not see it.
    pub fn send(&mut self, value: T) -> Result<(), SendError<T>> {
        match self.send_deadline(value, None) {
            Ok(()) => Ok(()),
            Err(SendTimeoutError::Disconnected(v) | SendTimeoutError::Timeout(v)) => {
                Err(SendError(v))
            }
        }
    }

    /// Sends a record if there is room now.
    pub fn try_send(&mut self, value: T) -> Result<(), TrySendError<T>> {
        if !self.holds_role() {
            return Err(TrySendError::Disconnected(value));
        }
        let view = self.segment.view(self.lossless);
        if !self.producer.has_space(&view) {
            // Full: dead receivers may be what holds us back. Look at most once a tick,
            // the check reads /proc.
            let now = Instant::now();
            if self
                .last_liveness
                .is_none_or(|t| now.duration_since(t) >= IDLE_TICK)
            {
                self.last_liveness = Some(now);
                self.producer.evict_dead(&view, &ProcLiveness);
            }
            if !self.producer.has_space(&view) {
                return Err(TrySendError::Full(value));
            }
        }
        self.producer.push(&view, &value);
        Ok(())
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
        match self.reserve(deadline) {
            Ok(()) => {
                let view = self.segment.view(self.lossless);
                self.producer.push(&view, &value);
                Ok(())
            }
            Err(Reserve::Timeout) => Err(SendTimeoutError::Timeout(value)),
            Err(Reserve::Disconnected) => Err(SendTimeoutError::Disconnected(value)),
        }
    }

    /// Waits until the next record may be written.
    #[inline]
    fn reserve(&mut self, deadline: Option<Instant>) -> Result<(), Reserve> {
        if !self.holds_role() {
            return Err(Reserve::Disconnected);
        }
        let view = self.segment.view(self.lossless);
        if self.producer.has_space(&view) {
            return Ok(());
        }
        self.reserve_slow(deadline)
    }

    #[cold]
    fn reserve_slow(&mut self, deadline: Option<Instant>) -> Result<(), Reserve> {
        let view = self.segment.view(self.lossless);
        let owner = self.owner;
        let producer = &mut self.producer;
        let outcome = wait::wait_for(self.wait, deadline, view.space_parker(), |idle| {
            if idle {
                if view.ctl.membership.sender.load(Ordering::Relaxed) != owner {
                    return Some(Err(Reserve::Disconnected));
                }
                producer.evict_dead(&view, &ProcLiveness);
            }
            producer.has_space(&view).then_some(Ok(()))
        });
        outcome.unwrap_or(Err(Reserve::Timeout))
    }

    /// Hands out the next slot to be filled in place, waiting for room like
    /// [`Sender::send`]. The record is published by [`Loan::publish`]; a loan dropped
    /// without publishing is abandoned and the slot is reused by the next send.
    ///
    /// In `Overflow::Block` mode the loan points into the shared slot itself (zero
    /// copy): no live receiver reads a slot the producer may write. In
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
    pub fn loan(&mut self) -> Result<Loan<'_, T>, SendError<()>> {
        self.reserve(None).map_err(|_| SendError(()))?;
        let view = self.segment.view(self.lossless);
        let seq = self.producer.begin(&view);
        let place = if self.lossless {
            let range = view.geom.data_range(seq);
            let ptr = view.slots[range.start].as_ptr().cast::<T>();
            debug_assert!(ptr.is_aligned());
            Place::Slot(ptr)
        } else {
            Place::Staged(T::zeroed())
        };
        Ok(Loan {
            sender: self,
            place,
        })
    }

    /// Number of receivers attached, after evicting those whose process died. Reads
    /// `/proc` for each: not for the hot path.
    pub fn receiver_count(&self) -> usize {
        broadcast::live_receivers(&self.segment.view(self.lossless), &ProcLiveness)
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

    /// Sequence number the next record will get: the number of records published on
    /// this segment so far.
    pub fn next_seq(&self) -> u64 {
        self.producer.next_seq()
    }
}

enum Reserve {
    Timeout,
    Disconnected,
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        broadcast::release_sender(&self.segment.view(self.lossless), self.owner);
    }
}

enum Place<T> {
    /// The record words of the slot, in the mapping (lossless mode).
    Slot(*mut T),
    /// A private copy, published with atomic stores (overwrite mode).
    Staged(T),
}

/// A slot lent by [`Sender::loan`], to be filled and then [published](Loan::publish).
pub struct Loan<'a, T: Pod> {
    sender: &'a mut Sender<T>,
    place: Place<T>,
}

impl<T: Pod> std::fmt::Debug for Loan<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loan")
            .field("seq", &self.sender.producer.next_seq())
            .field("in_place", &matches!(self.place, Place::Slot(_)))
            .finish()
    }
}

impl<T: Pod> Loan<'_, T> {
    /// Publishes the record: receivers can now read it.
    pub fn publish(self) {
        let view = self.sender.segment.view(self.sender.lossless);
        let seq = self.sender.producer.next_seq();
        if let Place::Staged(value) = &self.place {
            crate::sync::store_words(
                &view.slots[view.geom.data_range(seq)],
                bytemuck::bytes_of(value),
            );
        }
        self.sender.producer.commit(&view);
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
            // SAFETY: `ptr` points at the record words of the slot `begin` marked busy:
            // in bounds of the mapping (masked index), aligned for `T` (the slot array
            // is page aligned and the geometry aligns records to `align_of::<T>()`),
            // and any bit pattern is a valid `T` (Pod). The mapping outlives the loan,
            // which borrows the sender. Lossless mode gives exclusive access: the
            // producer gated this slot on every live receiver having read its previous
            // record (Acquire on their cursors), no receiver reads it before the
            // `Release` stamp store in `commit`, and only this process may produce.
            Place::Slot(ptr) => unsafe { &mut **ptr },
            Place::Staged(value) => value,
        }
    }
}
