//! The handle shape shared by `Receiver` and `Sender`: one call at a time, `close()`.

#[allow(unused_imports)]
use crate::prelude::*;
#[allow(unused_imports)]
use crate::{array::*, errors::*, fork::*, open::*, receiver::*, sender::*, wait::*};

/// A token per thread, to tell whether `close()` runs on the thread that is inside a
/// call on the handle (a signal handler that the call's wait ran): never 0.
pub(crate) fn thread_token() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        // `Relaxed`: only uniqueness matters, which the read-modify-write gives.
        static TOKEN: u64 = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    TOKEN.with(|t| *t)
}

/// What a `Receiver` or `Sender` holds: the Rust half, behind a lock that serves one
/// call at a time, and what may be read without taking that lock.
///
/// The GIL is never held while waiting for the lock: a call takes it with `try_lock`
/// (another thread inside a call: `RuntimeError`), `closed` and `repr` read `closing`
/// only, and `close()` waits for the lock with the GIL released. A waiting call
/// releases the GIL between slices and may run Python code there (signal handlers),
/// which may touch the handle: so may a child forked meanwhile, where the lock stays
/// held for ever by a thread that does not exist there.
///
/// Closing: `close()` sets `closing`, then takes the Rust half out if the lock is
/// free. If a call holds it, that call sees `closing` at its next slice (at most
/// [`SLICE`] later), returns with a closed error, and drops the Rust half itself as
/// it leaves ([`Handle::with`]); `close()` from another thread waits for that, with
/// the GIL released; `close()` from the calling thread itself (a signal handler) cannot
/// wait for the call it interrupted, and returns at once.
pub(crate) struct Handle<T> {
    pub(crate) cell: Mutex<Option<T>>,
    /// Set by `close()`, never cleared: the handle is closed, or will be when the call
    /// inside it returns.
    pub(crate) closing: AtomicBool,
    /// The [`thread_token`] of the thread inside a call on this handle (0: none).
    pub(crate) user: AtomicU64,
    pub(crate) what: &'static str,
    pub(crate) owner: Owner,
}

impl<T: Send> Handle<T> {
    pub(crate) fn new(value: T, what: &'static str) -> Self {
        Handle {
            cell: Mutex::new(Some(value)),
            closing: AtomicBool::new(false),
            user: AtomicU64::new(0),
            what,
            owner: Owner::current(),
        }
    }

    pub(crate) fn closed_error(&self) -> PyErr {
        PyValueError::new_err(format!("this {} is closed", self.what))
    }

    /// Runs `f` on the open handle, after checking the process and that no other
    /// thread uses it now. `f` gets the `closing` flag, which a wait checks between
    /// its slices (see [`between_slices`]).
    pub(crate) fn with<R>(
        &self,
        f: impl FnOnce(&mut T, &AtomicBool) -> PyResult<R>,
    ) -> PyResult<R> {
        self.owner.check(self.what)?;
        let mut guard = match self.cell.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::WouldBlock) => {
                return Err(PyRuntimeError::new_err(format!(
                    "this {} is in use by another thread (a handle serves one thread at a \
                     time; open one per thread)",
                    self.what
                )))
            }
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
        };
        // `Acquire`, here and below: pairs with the `Release` store in `close()` (only
        // the flag itself is read; the lock orders everything else).
        if self.closing.load(Ordering::Acquire) {
            drop(guard.take());
        }
        let Some(handle) = guard.as_mut() else {
            return Err(self.closed_error());
        };
        // `Relaxed`: read only by this thread (`close()` from a signal handler run
        // inside `f`); another thread reads a value that is never its own token.
        self.user.store(thread_token(), Ordering::Relaxed);
        let result = f(handle, &self.closing);
        self.user.store(0, Ordering::Relaxed);
        if self.closing.load(Ordering::Acquire) {
            // A close() came while `f` ran (from another thread, which now waits for
            // the lock, or from a signal handler on this one): finish it.
            drop(guard.take());
        }
        result
    }

    /// `close()`: leaves the segment now, or as soon as the call inside the handle
    /// returns (see [`Handle`]). Idempotent.
    pub(crate) fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.owner.check(self.what)?;
        // `Release`: pairs with the `Acquire` loads in `with` and `between_slices`.
        self.closing.store(true, Ordering::Release);
        let taken = match self.cell.try_lock() {
            Ok(mut guard) => guard.take(),
            Err(TryLockError::Poisoned(p)) => p.into_inner().take(),
            Err(TryLockError::WouldBlock) => {
                if self.user.load(Ordering::Relaxed) == thread_token() {
                    // Called from Python code that a call on this handle runs on this
                    // thread (a signal handler in its wait): that call closes the
                    // handle when it returns, which it does at its next slice.
                    return Ok(());
                }
                // Another thread is inside a call: it gives the lock back within one
                // slice. Wait for it without the GIL (it may need the GIL to return).
                py.detach(|| {
                    self.cell
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .take()
                })
            }
        };
        drop(taken);
        Ok(())
    }

    /// Whether `close()` was called (the state kept outside the lock).
    pub(crate) fn closed(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }
}

/// The shape `Receiver` and `Sender` share around their [`Handle`]: calls on the open
/// handle, `closed`, `close()`, the context manager's exit and `repr`, written once. The
/// classes' `#[pymethods]` stay thin forwarders to these (the Python-visible methods
/// and their docstrings are per class).
pub(crate) trait HandleClass {
    /// The Rust half behind the handle's lock.
    type Inner: Send;
    /// The class's name in `repr`.
    const CLASS: &'static str;

    fn handle(&self) -> &Handle<Self::Inner>;
    fn dtype_descr(&self) -> &Py<PyArrayDescr>;
    fn segment_name(&self) -> &str;

    /// Runs `f` on the open handle (see [`Handle::with`]).
    fn with<R>(&self, f: impl FnOnce(&mut Self::Inner, &AtomicBool) -> PyResult<R>) -> PyResult<R> {
        self.handle().with(f)
    }

    /// `closed`: whether `close()` was called. Never waits for a call in progress.
    fn is_closed(&self) -> bool {
        self.handle().closed()
    }

    /// `close()` (see [`Handle::close`]).
    fn close_handle(&self, py: Python<'_>) -> PyResult<()> {
        self.handle().close(py)
    }

    /// `__exit__`: closes, and lets any exception propagate.
    fn exit(&self, py: Python<'_>) -> PyResult<bool> {
        self.close_handle(py)?;
        Ok(false)
    }

    /// `__repr__`: `<shmchan.Class 'name' dtype=... [closed]>`.
    fn repr(&self, py: Python<'_>) -> String {
        format!(
            "<shmchan.{} {:?} dtype={}{}>",
            Self::CLASS,
            self.segment_name(),
            dtype_text(self.dtype_descr().bind(py)),
            if self.is_closed() { " closed" } else { "" }
        )
    }
}
