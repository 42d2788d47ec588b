//! Waiting: deadlines, the slices a blocking call waits in, and what runs between them.

#[allow(unused_imports)]
use crate::prelude::*;
#[allow(unused_imports)]
use crate::{array::*, errors::*, fork::*, handle::*, open::*, receiver::*, sender::*};

/// The longest a blocking call waits with the GIL released before it runs Python's
/// signal handlers: the core's liveness tick (a wait of one tick ends with the
/// liveness check that detects a dead sender, so slices must not be shorter).
pub(crate) const SLICE: Duration = Duration::from_millis(50);

/// A deadline from a Python timeout in seconds (`None`: wait for ever). A timeout too
/// long for a `Duration` or for the clock (`1e19`, `inf`) waits for ever too.
pub(crate) fn deadline(timeout: Option<f64>) -> PyResult<Option<Instant>> {
    match timeout {
        None => Ok(None),
        Some(t) if t.is_nan() || t < 0.0 => Err(PyValueError::new_err(format!(
            "timeout must be a non-negative number of seconds or None, not {t}"
        ))),
        Some(t) => Ok(Duration::try_from_secs_f64(t)
            .ok()
            .and_then(|d| Instant::now().checked_add(d))),
    }
}

/// The next slice of a wait until `deadline`: at most [`SLICE`], `None` once it passed.
pub(crate) fn next_slice(deadline: Option<Instant>) -> Option<Duration> {
    match deadline {
        None => Some(SLICE),
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            (!left.is_zero()).then(|| left.min(SLICE))
        }
    }
}

/// What a wait does between two slices: runs Python's signal handlers (an exception
/// from one ends the call), then ends the call if the handle was closed meanwhile.
pub(crate) fn between_slices(
    py: Python<'_>,
    closing: &AtomicBool,
    what: &str,
    call: &str,
) -> PyResult<()> {
    py.check_signals()?;
    // `Acquire`: pairs with the `Release` store in `Handle::close`.
    if closing.load(Ordering::Acquire) {
        return Err(PyValueError::new_err(format!(
            "this {what} was closed while {call} waited (close() from another thread or a \
             signal handler)"
        )));
    }
    Ok(())
}

/// How many records a batch receive asks for at most: `max`, bounded by what one can
/// return in practice, the ring's capacity (a receive may return fewer than asked
/// for, never has to return more than a ring holds).
pub(crate) fn batch_bound(max: usize, capacity: usize) -> usize {
    max.min(capacity.max(1))
}
