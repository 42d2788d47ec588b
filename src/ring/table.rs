//! Membership: who holds the receiver and producer tables and the `Route` sender
//! claim, and what happens to entries whose process died.
//!
//! # Entries
//!
//! A participant takes a free entry (a receiver entry, a `Channel` producer entry, the
//! `Route` sender claim) with a CAS of its owner word from 0 to its own owner word
//! (`process.rs`: pid and start time). It gives it back with a CAS to 0, so an entry a
//! peer has meanwhile re-assigned is never freed by mistake.
//!
//! # The dead
//!
//! A peer that finds an entry whose process is dead (the liveness oracle, `process.rs`)
//! frees it with a CAS from that owner word to 0: a receiver is *evicted* (a lossless
//! producer blocked on it, or anyone counting receivers), a producer is *reaped* (by
//! receivers once a liveness tick, or by a joining producer when the table is full),
//! and the `Route` sender claim is taken over by the next sender. A live participant
//! that finds its owner word changed has lost its role (`Evicted`).
//!
//! Whoever frees a dead participant's entry also takes back its registration as a
//! sleeper, if it died asleep (`parked`, `wait.rs`, "Sleepers that die"), so that the
//! waiter counts do not stay high and make every later notify a system call. It does
//! so *before* the CAS that frees the entry, and only if the `parked` word still holds
//! that owner's registration (a CAS on its value): once the entry is free, its next
//! owner may register through the same word, and a take-back after that could take the
//! newcomer's registration instead (which then stays counted when it unregisters) or
//! find the dead one's overwritten, leaving a count one too high that no sweep can
//! find. A notifier whose wake calls keep finding nobody asleep runs [`sweep_parked`],
//! which frees the entries of participants that died registered even where nothing
//! else would look (an `Overwrite` producer never evicts anyone).

use super::multi::lower_count;
use super::RingView;
use crate::layout::ReceiverEntry;
use crate::process::Liveness;
use crate::sync::{fence, AtomicU64, Ordering};
use crate::wait::take_back;
use crate::weaken::ordering;

/// Takes the first free entry of a table (receivers or producers) for `owner`: CAS of
/// its owner word from 0. Returns its index, or `None` if every entry is held.
pub(crate) fn claim_free<E>(
    entries: &[E],
    owner: u64,
    owner_of: impl Fn(&E) -> &AtomicU64,
) -> Option<usize> {
    entries.iter().position(|entry| {
        let word = owner_of(entry);
        // `Acquire` on success: we see the previous owner's last stores.
        word.load(Ordering::Relaxed) == 0
            && word
                .compare_exchange(0, owner, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    })
}

/// Evicts `entry` if it is still held by `owner`. Returns whether this call evicted it.
pub fn evict(view: &RingView<'_>, entry: &ReceiverEntry, owner: u64) -> bool {
    // Before the entry is freed: see the module doc.
    take_back_sleeper(view, &entry.parked, owner);
    // `AcqRel`/`Relaxed`: the CAS only needs to be atomic against a re-join; the
    // producer rescans afterwards with its own `Acquire` loads.
    let evicted = entry
        .owner
        .compare_exchange(owner, 0, Ordering::AcqRel, Ordering::Relaxed)
        .is_ok();
    if evicted {
        view.ctl
            .membership
            .evictions
            .fetch_add(1, Ordering::Relaxed);
    }
    evicted
}

/// Takes back the registration as a sleeper of `owner`, found dead, through the
/// `parked` word of the entry it holds: before that entry is freed (module doc).
fn take_back_sleeper(view: &RingView<'_>, parked: &AtomicU64, owner: u64) {
    take_back(
        parked,
        owner,
        &view.ctl.data.waiters,
        &view.ctl.space.waiters,
    );
}

/// Frees the entries of participants that died while registered as sleepers (see the
/// module doc). Called by a notifier every so many wake calls that woke nobody.
#[cold]
pub fn sweep_parked(view: &RingView<'_>, liveness: &impl Liveness) {
    for entry in view.receivers {
        let owner = entry.owner.load(Ordering::Acquire);
        if owner != 0 && entry.parked.load(Ordering::Relaxed) != 0 && !liveness.is_alive(owner) {
            evict(view, entry, owner);
        }
    }
    if view
        .producers
        .iter()
        .any(|p| p.parked.load(Ordering::Relaxed) != 0)
    {
        reap_dead_producers(view, liveness);
    }
    if view.ctl.membership.sender_parked.load(Ordering::Relaxed) != 0 {
        reap_sender(view, liveness);
    }
}

/// Lossless broadcast, while a producer is blocked before writing `next`: evicts the
/// receivers holding it back whose processes are dead. Returns how many.
pub fn evict_blocking(view: &RingView<'_>, next: u64, liveness: &impl Liveness) -> usize {
    let mut evicted = 0;
    for entry in view.receivers {
        let owner = entry.owner.load(Ordering::Acquire);
        if owner == 0 {
            continue;
        }
        let cursor = entry.cursor.load(Ordering::Acquire);
        if cursor.saturating_add(view.geom.capacity) > next {
            continue; // not what blocks us
        }
        if !liveness.is_alive(owner) && evict(view, entry, owner) {
            evicted += 1;
        }
    }
    evicted
}

/// Counts the receivers whose process is alive, evicting the dead ones on the way.
pub fn live_receivers(view: &RingView<'_>, liveness: &impl Liveness) -> usize {
    let mut live = 0;
    for entry in view.receivers {
        let owner = entry.owner.load(Ordering::Acquire);
        if owner == 0 {
            continue;
        }
        if liveness.is_alive(owner) {
            live += 1;
        } else {
            evict(view, entry, owner);
        }
    }
    if live < view.receivers.len() {
        // An eviction may unblock a lossless producer.
        fence(Ordering::SeqCst);
        view.wake_space();
    }
    live
}

/// Claims the `Route` sender role for `owner`. If another owner holds it and is dead,
/// takes it over. `Err(holder)` if a live process holds it.
pub fn claim_sender(view: &RingView<'_>, owner: u64, liveness: &impl Liveness) -> Result<(), u64> {
    let sender = &view.ctl.membership.sender;
    let mut current = 0;
    loop {
        // `Acquire` on success: we see everything the previous sender published.
        match sender.compare_exchange(current, owner, Ordering::Acquire, Ordering::Acquire) {
            Ok(_) => break,
            Err(holder) if holder != 0 && liveness.is_alive(holder) => return Err(holder),
            Err(holder) => {
                if holder != 0 {
                    // To be taken over from a dead sender, which may have died asleep:
                    // its registration first (module doc).
                    take_back_sleeper(view, &view.ctl.membership.sender_parked, holder);
                }
                current = holder;
            }
        }
    }
    view.ctl
        .membership
        .sender_attaches
        .fetch_add(1, Ordering::Release);
    Ok(())
}

/// Gives up the `Route` sender role (if `owner` still holds it) and wakes every
/// sleeping receiver so that it sees the disconnection.
pub fn release_sender(view: &RingView<'_>, owner: u64) {
    // `Release`: a receiver that sees the claim gone (`Acquire`) sees every record.
    let _ =
        view.ctl
            .membership
            .sender
            .compare_exchange(owner, 0, Ordering::Release, Ordering::Relaxed);
    // Pairs with the receivers' F_w: a receiver about to sleep sees the claim gone.
    fence(Ordering::SeqCst);
    view.wake_data();
}

/// Clears the `Route` sender claim if its holder is dead. Returns whether it did.
pub fn reap_sender(view: &RingView<'_>, liveness: &impl Liveness) -> bool {
    let sender = &view.ctl.membership.sender;
    let owner = sender.load(Ordering::Acquire);
    if owner == 0 || liveness.is_alive(owner) {
        return false;
    }
    // Before the claim is freed (module doc).
    take_back_sleeper(view, &view.ctl.membership.sender_parked, owner);
    sender
        .compare_exchange(owner, 0, Ordering::AcqRel, Ordering::Relaxed)
        .is_ok()
}

/// Frees the entries of `Channel` producers whose process died. Returns how many.
pub fn reap_dead_producers(view: &RingView<'_>, liveness: &impl Liveness) -> usize {
    let mut reaped = 0;
    for entry in view.producers {
        let owner = entry.owner.load(Ordering::Acquire);
        if owner == 0 || liveness.is_alive(owner) {
            continue;
        }
        // Before the entry is freed (module doc).
        take_back_sleeper(view, &entry.parked, owner);
        if entry
            .owner
            .compare_exchange(owner, 0, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            // After the entry is free, as `leave` (`multi.rs`, "Membership"): a reaper
            // that dies in between leaves the count high, never low.
            lower_count(view);
            reaped += 1;
        }
    }
    reaped
}

/// Whether a live `Channel` producer claims (or is writing) `seq`.
pub(crate) fn claim_alive(view: &RingView<'_>, seq: u64, liveness: &impl Liveness) -> bool {
    view.producers.iter().any(|p| {
        // `Acquire`: pairs with the claimer's intent store, published by its claim CAS.
        p.claim.load(Ordering::Acquire) == seq.wrapping_add(1) && {
            let owner = p.owner.load(Ordering::Acquire);
            owner != 0 && liveness.is_alive(owner)
        }
    })
}

/// Whether the `Route` sender claim is held.
pub(crate) fn route_sender_present(view: &RingView<'_>) -> bool {
    // `Acquire`: pairs with the `Release` with which the sender leaves, so if it left,
    // every record it published is visible to the re-check that follows.
    view.ctl.membership.sender.load(Ordering::Acquire) != 0
}

/// Whether any `Channel` producer holds an entry, from the owner words themselves: the
/// table is the truth, the count only a hint (`multi.rs`, "Membership").
pub(crate) fn producers_present(view: &RingView<'_>) -> bool {
    // `Acquire`: pairs with the `Release` owner CAS with which a producer leaves, so if
    // none is left, every record they published is visible to the re-check that
    // follows.
    view.producers
        .iter()
        .any(|p| p.owner.load(ordering!("mp_present", Acquire, Relaxed)) != 0)
}

/// What a receiver reads before it scans the producer table, and keeps with the
/// verdict: while it reads the same again, no join or leave has run to its end since
/// and the verdict stands (`multi.rs`, "Membership").
pub(crate) fn presence_key(view: &RingView<'_>) -> (u64, u64) {
    let membership = &view.ctl.membership;
    // `Acquire` (both): pairs with the `Release` increment of `sender_attaches` after
    // a joiner's owner CAS and the `Release` decrement of the count after a leaver's,
    // so a scan after a key that shows either sees that entry's new owner word.
    (
        membership.sender_attaches.load(Ordering::Acquire),
        membership.producers.load(Ordering::Acquire),
    )
}
