//! `shmchan._shmchan`: the Python extension module over [`shmchan::raw`].
//!
//! A thin room: every send and receive is a call of [`RawSender`] or [`RawReceiver`]
//! (the one implementation of the protocol, which the typed Rust API wraps as well).
//! What lives here is only what Python needs around it:
//!
//! * numpy in and out: a record comes back as numpy gives `a[0]` of a one-record
//!   array (a `numpy.void` or scalar built from a copy, an array for a subarray dtype:
//!   [`one_record`]); a batch is received straight into a new array of at most the
//!   ring's capacity, then cut to the records received; `recv_into` fills a caller's
//!   C-contiguous, writeable array of the same dtype; a send takes an array of the
//!   dtype, a buffer of bytes as raw records, or what converts safely ([`send_source`]);
//! * blocking calls release the GIL and wait in slices of at most [`SLICE`] (the
//!   core's 50 ms liveness tick), running Python's signal handlers and checking for a
//!   `close()` between slices, so Ctrl-C interrupts a `recv()`, `close()` from another
//!   thread ends it, and other Python threads run meanwhile;
//! * a handle ([`Handle`]) serves one call at a time and is never waited for with the
//!   GIL held: attributes and `repr` read state kept outside its lock, so they answer
//!   from any thread, a signal handler or a forked child;
//! * errors become Python exceptions (`shmchan.Lagged`, `Disconnected`, `Evicted`,
//!   `Mismatch`, builtin `TimeoutError`, `FileNotFoundError`, `PermissionError`, ...);
//!   one that ends a `send_many` part way carries the count sent as `.sent`;
//! * a handle belongs to the process that opened it: one used in a forked child
//!   raises instead of acting for its parent.
//!
//! The dtype checks (byte order, object fields) and the schema defaults are in the
//! Python package (`shmchan/__init__.py`), which calls [`open_receiver`] and
//! [`open_sender`] with a validated dtype; the openers refuse object dtypes again
//! themselves (their records would be pointers).
//!
//! Modules, one job each: `errors` (exception classes, error mapping), `fork` (fork
//! detection), `wait` (deadlines, slices, what runs between them), `array` (numpy in
//! and out), `open` (options, openers, `inspect`, `remove`), `handle` (the lock and
//! `close()` shared by both classes, and [`handle::HandleClass`], their common shape),
//! `receiver` and `sender` (the classes), `prelude` (shared imports).

mod array;
mod errors;
mod fork;
mod handle;
mod open;
mod prelude;
mod receiver;
mod sender;
mod wait;

use errors::*;
use fork::*;
use open::*;
use prelude::*;
use receiver::*;
use sender::*;
use wait::*;

/// The extension module `shmchan._shmchan`.
#[pymodule]
fn _shmchan(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    install_fork_handler();
    m.add("Error", py.get_type::<Error>())?;
    m.add("Lagged", py.get_type::<Lagged>())?;
    m.add("Disconnected", py.get_type::<Disconnected>())?;
    m.add("Evicted", py.get_type::<Evicted>())?;
    m.add("Mismatch", py.get_type::<Mismatch>())?;
    m.add("SenderExists", py.get_type::<SenderExists>())?;
    m.add_class::<Receiver>()?;
    m.add_class::<Sender>()?;
    m.add_class::<Batches>()?;
    m.add_function(wrap_pyfunction!(open_receiver, m)?)?;
    m.add_function(wrap_pyfunction!(open_sender, m)?)?;
    m.add_function(wrap_pyfunction!(inspect, m)?)?;
    m.add_function(wrap_pyfunction!(remove, m)?)?;
    m.add("SLICE_SECONDS", SLICE.as_secs_f64())?;
    Ok(())
}
