//! `shmchan._shmchan`: the Python extension module over [`shmchan::raw`].
//!
//! A thin room: every send and receive is a call of [`RawSender`] or [`RawReceiver`]
//! (the one implementation of the protocol, which the typed Rust API wraps as well).
//! What lives here is only what Python needs around it:
//!
//! * numpy in and out: a record comes back as a `numpy.void` (or scalar) built from a
//!   copy, a batch as a new array of exactly the records received, `recv_into` fills
//!   a caller's C-contiguous, writeable array of the same dtype;
//! * blocking calls release the GIL and wait in slices of at most [`SLICE`] (the
//!   core's 50 ms liveness tick), running Python's signal handlers between slices, so
//!   Ctrl-C interrupts a `recv()` and other Python threads run meanwhile;
//! * errors become Python exceptions (`shmchan.Lagged`, `Disconnected`, `Evicted`,
//!   `Mismatch`, builtin `TimeoutError`, `FileNotFoundError`, `PermissionError`, ...);
//! * a handle belongs to the process that opened it: one used in a forked child
//!   raises instead of acting for its parent.
//!
//! The dtype checks (byte order, object fields) and the schema defaults are in the
//! Python package (`shmchan/__init__.py`), which calls [`open_receiver`] and
//! [`open_sender`] with a validated dtype.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once, TryLockError};
use std::time::{Duration, Instant};

use numpy::npyffi::{self, npy_intp, NpyTypes, NPY_ARRAY_WRITEABLE, PY_ARRAY_API};
use numpy::{PyArrayDescr, PyArrayDescrMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::{
    PyException, PyFileNotFoundError, PyOSError, PyPermissionError, PyRuntimeError, PyTimeoutError,
    PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use shmchan::raw::{self, RawError, RawReceiver, RawSender, RecordLayout};
use shmchan::{
    Mode, OpenError, Overflow, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError,
    TrySendError, Wait,
};

/// The longest a blocking call waits with the GIL released before it runs Python's
/// signal handlers: the core's liveness tick (a wait of one tick ends with the
/// liveness check that detects a dead sender, so slices must not be shorter).
const SLICE: Duration = Duration::from_millis(50);

create_exception!(
    shmchan,
    Error,
    PyException,
    "Base class of the errors shmchan raises itself."
);
create_exception!(
    shmchan,
    Lagged,
    Error,
    "The receiver fell a whole ring behind (Overflow 'overwrite'); `.missed` records were \
     skipped and the next receive continues at the oldest record still in the ring."
);
create_exception!(
    shmchan,
    Disconnected,
    Error,
    "Every sender left or died, and every record they published has been received."
);
create_exception!(
    shmchan,
    Evicted,
    Error,
    "This handle's entry was taken from it (it was judged dead); open a new one."
);
create_exception!(
    shmchan,
    Mismatch,
    Error,
    "The segment exists with other options or another record layout: `.field` differs, \
     `.expected` is what this side asked for, `.found` what the segment holds."
);
create_exception!(
    shmchan,
    SenderExists,
    Error,
    "A Route already has a live sender (`.pid`); a Route allows one."
);

// ---------------------------------------------------------------------------------
// Fork detection

/// Bumped in the child of every `fork()` (a `pthread_atfork` handler), so a handle can
/// tell with one load that it is used in a child of the process that opened it.
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

extern "C" fn after_fork_in_child() {
    // `Relaxed`: the child is single-threaded when this runs, and reads it later on the
    // same thread (or on threads it starts, which synchronise with their creation).
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
}

fn install_fork_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: registers a handler that only increments an atomic (async-signal-safe).
        unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
    });
}

/// The process a handle was opened in.
#[derive(Debug, Clone, Copy)]
struct Owner {
    generation: u64,
    pid: u32,
}

impl Owner {
    fn current() -> Self {
        Owner {
            generation: FORK_GENERATION.load(Ordering::Relaxed),
            pid: std::process::id(),
        }
    }

    fn check(&self, what: &str) -> PyResult<()> {
        if FORK_GENERATION.load(Ordering::Relaxed) == self.generation {
            return Ok(());
        }
        Err(Error::new_err(format!(
            "this {what} was opened by process {} and cannot be used in a forked child \
             (pid {}): open a new one in the child (multiprocessing's 'spawn' start method \
             avoids inheriting handles)",
            self.pid,
            std::process::id()
        )))
    }
}

// ---------------------------------------------------------------------------------
// Errors

fn open_error(py: Python<'_>, e: OpenError) -> PyErr {
    let text = e.to_string();
    match e {
        OpenError::InvalidName { .. } | OpenError::InvalidOption { .. } => {
            PyValueError::new_err(text)
        }
        OpenError::Mismatch {
            path,
            field,
            expected,
            found,
        } => {
            let err = Mismatch::new_err(text);
            let value = err.value(py);
            let _ = value.setattr("field", field);
            let _ = value.setattr("expected", expected);
            let _ = value.setattr("found", found);
            let _ = value.setattr("path", path);
            err
        }
        OpenError::SenderExists { pid, .. } => {
            let err = SenderExists::new_err(text);
            let _ = err.value(py).setattr("pid", pid);
            err
        }
        OpenError::Timeout { .. } => PyTimeoutError::new_err(text),
        OpenError::PermissionDenied { source, .. } => {
            PyPermissionError::new_err((source.raw_os_error().unwrap_or(libc::EACCES), text))
        }
        OpenError::NoSpace { .. } => PyOSError::new_err((libc::ENOSPC, text)),
        OpenError::Io { ref source, .. } => {
            let text = format!("{text}: {source}");
            let errno = source.raw_os_error().unwrap_or(libc::EIO);
            match source.kind() {
                std::io::ErrorKind::NotFound => PyFileNotFoundError::new_err((errno, text)),
                std::io::ErrorKind::PermissionDenied => PyPermissionError::new_err((errno, text)),
                _ => PyOSError::new_err((errno, text)),
            }
        }
        _ => Error::new_err(text),
    }
}

fn lagged(py: Python<'_>, missed: u64) -> PyErr {
    let err = Lagged::new_err(format!(
        "receiver lagged behind and skipped {missed} records"
    ));
    let _ = err.value(py).setattr("missed", missed);
    err
}

fn length_error<E>(e: &RawError<E>) -> PyErr
where
    RawError<E>: std::fmt::Display,
{
    PyValueError::new_err(e.to_string())
}

/// What a receive ended with, other than records: the one mapping of the core's
/// receive errors to Python.
enum RecvEnd {
    Empty,
    Timeout,
    Lagged(u64),
    Disconnected,
    Evicted,
}

impl RecvEnd {
    fn into_err(self, py: Python<'_>) -> PyErr {
        match self {
            RecvEnd::Empty | RecvEnd::Timeout => {
                PyTimeoutError::new_err("timed out waiting for a record")
            }
            RecvEnd::Lagged(n) => lagged(py, n),
            RecvEnd::Disconnected => Disconnected::new_err("all senders disconnected"),
            RecvEnd::Evicted => Evicted::new_err("receiver was evicted from the segment"),
        }
    }
}

fn try_end(e: RawError<TryRecvError>) -> PyResult<RecvEnd> {
    match e {
        RawError::Channel(TryRecvError::Empty) => Ok(RecvEnd::Empty),
        RawError::Channel(TryRecvError::Lagged(n)) => Ok(RecvEnd::Lagged(n)),
        RawError::Channel(TryRecvError::Disconnected) => Ok(RecvEnd::Disconnected),
        RawError::Channel(TryRecvError::Evicted) => Ok(RecvEnd::Evicted),
        e => Err(length_error(&e)),
    }
}

fn timeout_end(e: RawError<RecvTimeoutError>) -> PyResult<RecvEnd> {
    match e {
        RawError::Channel(RecvTimeoutError::Timeout) => Ok(RecvEnd::Timeout),
        RawError::Channel(RecvTimeoutError::Lagged(n)) => Ok(RecvEnd::Lagged(n)),
        RawError::Channel(RecvTimeoutError::Disconnected) => Ok(RecvEnd::Disconnected),
        RawError::Channel(RecvTimeoutError::Evicted) => Ok(RecvEnd::Evicted),
        e => Err(length_error(&e)),
    }
}

// ---------------------------------------------------------------------------------
// Time

/// A deadline from a Python timeout in seconds (`None`: wait for ever).
fn deadline(timeout: Option<f64>) -> PyResult<Option<Instant>> {
    match timeout {
        None => Ok(None),
        Some(t) if t.is_nan() || t < 0.0 => Err(PyValueError::new_err(format!(
            "timeout must be a non-negative number of seconds or None, not {t}"
        ))),
        Some(t) => Ok(Some(
            Instant::now() + Duration::try_from_secs_f64(t).unwrap_or(Duration::MAX / 4),
        )),
    }
}

/// The next slice of a wait until `deadline`: at most [`SLICE`], `None` once it passed.
fn next_slice(deadline: Option<Instant>) -> Option<Duration> {
    match deadline {
        None => Some(SLICE),
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            (!left.is_zero()).then(|| left.min(SLICE))
        }
    }
}

// ---------------------------------------------------------------------------------
// numpy

/// A new array of `count` records of `descr`, a copy of `bytes` (`count * itemsize`).
fn new_array<'py>(
    py: Python<'py>,
    descr: &Bound<'py, PyArrayDescr>,
    count: usize,
    bytes: &[u8],
) -> PyResult<Bound<'py, PyAny>> {
    debug_assert_eq!(bytes.len(), count * descr.itemsize());
    let mut dims = [count as npy_intp];
    // SAFETY: `PyArray_NewFromDescr` steals a reference to the descriptor, which
    // `into_dtype_ptr` hands over; the new array owns uninitialised memory of
    // `count * itemsize` bytes (`bytes.len()`), which is filled before anyone sees it.
    unsafe {
        let array_type = npyffi::get_type_object(py, NpyTypes::PyArray_Type);
        let ptr = PY_ARRAY_API.PyArray_NewFromDescr(
            py,
            array_type,
            descr.clone().into_dtype_ptr(),
            1,
            dims.as_mut_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
            std::ptr::null_mut(),
        );
        let array = Bound::from_owned_ptr_or_err(py, ptr)?;
        let data = (*(ptr as *mut npyffi::PyArrayObject)).fields.data as *mut u8;
        if !bytes.is_empty() {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), data, bytes.len());
        }
        Ok(array)
    }
}

/// One record of `descr` as a numpy scalar (`numpy.void` for a structured dtype), a
/// copy of `bytes`.
fn new_scalar<'py>(
    py: Python<'py>,
    descr: &Bound<'py, PyArrayDescr>,
    bytes: &mut [u8],
) -> PyResult<Bound<'py, PyAny>> {
    debug_assert_eq!(bytes.len(), descr.itemsize());
    // SAFETY: without a base object numpy copies `itemsize` bytes from `data` into a
    // scalar of its own (`PyArray_Scalar`); `bytes` holds that many. The descriptor is
    // borrowed (numpy takes its own reference).
    unsafe {
        let ptr = PY_ARRAY_API.PyArray_Scalar(
            py,
            bytes.as_mut_ptr().cast(),
            descr.as_dtype_ptr(),
            std::ptr::null_mut(),
        );
        Bound::from_owned_ptr_or_err(py, ptr)
    }
}

/// Whether an array of `dtype` holds records of `descr`: the same dtype, or for a
/// subarray record dtype (`('<u4', (3,))`, which numpy turns into trailing dimensions
/// of an array) its base dtype.
fn holds_records_of(dtype: &Bound<'_, PyArrayDescr>, descr: &Bound<'_, PyArrayDescr>) -> bool {
    dtype.is_equiv_to(descr) || (descr.has_subarray() && dtype.is_equiv_to(&descr.base()))
}

fn dtype_text(descr: &Bound<'_, PyArrayDescr>) -> String {
    descr
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// `obj`'s records as bytes, for a send: `bytes`/`bytearray` are taken as they are
/// (the length is checked by the core), anything else must be (or convert to) an
/// array of this dtype; an object with another dtype is refused rather than cast.
/// Returns the object that owns the bytes (to keep alive), a pointer and a length.
fn send_source<'py>(
    py: Python<'py>,
    descr: &Bound<'py, PyArrayDescr>,
    obj: &Bound<'py, PyAny>,
) -> PyResult<(Bound<'py, PyAny>, *const u8, usize)> {
    if let Ok(bytes) = obj.cast::<PyBytes>() {
        let b = bytes.as_bytes();
        return Ok((obj.clone(), b.as_ptr(), b.len()));
    }
    if let Ok(dtype) = obj.getattr("dtype") {
        if let Ok(dtype) = dtype.cast::<PyArrayDescr>() {
            if !holds_records_of(dtype, descr) {
                return Err(PyTypeError::new_err(format!(
                    "records of dtype {} cannot be sent on a segment of dtype {}",
                    dtype_text(dtype),
                    dtype_text(descr)
                )));
            }
        }
    }
    // A subarray record dtype converts as its base dtype: numpy would give every
    // element of the input a subarray of its own.
    let target = if descr.has_subarray() {
        descr.base()
    } else {
        descr.clone()
    };
    // SAFETY: `PyArray_FromAny` steals the descriptor reference handed over by
    // `into_dtype_ptr`; it returns a new reference to a C-contiguous array of that
    // dtype (the same array if `obj` is one already), or NULL with an exception set.
    let array = unsafe {
        let ptr = PY_ARRAY_API.PyArray_FromAny(
            py,
            obj.as_ptr(),
            target.into_dtype_ptr(),
            0,
            0,
            npyffi::NPY_ARRAY_C_CONTIGUOUS,
            std::ptr::null_mut(),
        );
        Bound::from_owned_ptr_or_err(py, ptr)?
    };
    let untyped = array.cast::<PyUntypedArray>()?;
    let len = untyped.shape().iter().product::<usize>() * untyped.dtype().itemsize();
    // SAFETY: a numpy array's `data` points at its `size * itemsize` bytes.
    let data = unsafe { (*untyped.as_array_ptr()).fields.data as *const u8 };
    Ok((array, data, len))
}

/// The bytes at `ptr`.
///
/// # Safety
/// `ptr` must be valid for reads of `len` bytes for as long as the slice is used (the
/// caller keeps the object that owns them alive).
unsafe fn bytes_at<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if len == 0 {
        return &[];
    }
    // SAFETY: as the caller promises.
    unsafe { std::slice::from_raw_parts(ptr, len) }
}

// ---------------------------------------------------------------------------------
// Opening

/// The options every open takes, mirroring the Rust builder.
#[derive(Debug, FromPyObject)]
struct Options {
    #[pyo3(item)]
    family: String,
    #[pyo3(item)]
    name: Option<String>,
    #[pyo3(item)]
    schema: String,
    #[pyo3(item)]
    align: usize,
    #[pyo3(item)]
    capacity: Option<usize>,
    #[pyo3(item)]
    mode: Option<String>,
    #[pyo3(item)]
    overflow: Option<String>,
    #[pyo3(item)]
    wait: Option<String>,
    #[pyo3(item)]
    max_receivers: Option<usize>,
    #[pyo3(item)]
    max_producers: Option<usize>,
    #[pyo3(item)]
    path: Option<PathBuf>,
    #[pyo3(item)]
    permissions: Option<u32>,
    #[pyo3(item)]
    open_timeout: Option<f64>,
}

fn parse_mode(s: &str) -> PyResult<Mode> {
    match s.to_ascii_lowercase().as_str() {
        "broadcast" => Ok(Mode::Broadcast),
        "unicast" => Ok(Mode::Unicast),
        _ => Err(PyValueError::new_err(format!(
            "mode must be 'broadcast' or 'unicast', not {s:?}"
        ))),
    }
}

fn parse_overflow(s: &str) -> PyResult<Overflow> {
    match s.to_ascii_lowercase().as_str() {
        "overwrite" => Ok(Overflow::Overwrite),
        "block" => Ok(Overflow::Block),
        _ => Err(PyValueError::new_err(format!(
            "overflow must be 'overwrite' or 'block', not {s:?}"
        ))),
    }
}

fn parse_wait(s: &str) -> PyResult<Wait> {
    match s.to_ascii_lowercase().as_str() {
        "spin" => Ok(Wait::Spin),
        "adaptive" => Ok(Wait::Adaptive),
        "block" => Ok(Wait::Block),
        _ => Err(PyValueError::new_err(format!(
            "wait must be 'spin', 'adaptive' or 'block', not {s:?}"
        ))),
    }
}

fn builder(
    py: Python<'_>,
    descr: &Bound<'_, PyArrayDescr>,
    o: &Options,
) -> PyResult<(shmchan::Builder<raw::Raw>, String)> {
    let layout =
        RecordLayout::new(descr.itemsize(), o.align, &o.schema).map_err(|e| open_error(py, e))?;
    // With a path and no name, the file's name stands for it (the builder needs one).
    let name = match (&o.name, &o.path) {
        (Some(name), _) => name.clone(),
        (None, Some(path)) => path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| "segment".into()),
        (None, None) => return Err(PyValueError::new_err("a name or a path is needed")),
    };
    let mut b = match o.family.as_str() {
        "route" => raw::route(&name, layout),
        "channel" => raw::channel(&name, layout),
        other => return Err(PyValueError::new_err(format!("unknown family {other:?}"))),
    };
    if let Some(c) = o.capacity {
        b = b.capacity(c);
    }
    if let Some(m) = &o.mode {
        b = b.mode(parse_mode(m)?);
    }
    if let Some(v) = &o.overflow {
        b = b.overflow(parse_overflow(v)?);
    }
    if let Some(w) = &o.wait {
        b = b.wait(parse_wait(w)?);
    }
    if let Some(n) = o.max_receivers {
        b = b.max_receivers(n);
    }
    if let Some(n) = o.max_producers {
        b = b.max_producers(n);
    }
    if let Some(p) = &o.path {
        b = b.path(p.clone());
    }
    if let Some(p) = o.permissions {
        b = b.permissions(p);
    }
    if let Some(t) = o.open_timeout {
        if t.is_nan() || t < 0.0 {
            return Err(PyValueError::new_err("open_timeout must be non-negative"));
        }
        b = b.open_timeout(Duration::try_from_secs_f64(t).unwrap_or(Duration::MAX / 4));
    }
    Ok((b, name))
}

/// Opens a receiver. `options` is a dict of every key of `Options`; the dtype is
/// validated by the caller (native byte order, no objects).
#[pyfunction]
fn open_receiver(
    py: Python<'_>,
    dtype: Bound<'_, PyArrayDescr>,
    options: Options,
) -> PyResult<Receiver> {
    install_fork_handler();
    let (b, name) = builder(py, &dtype, &options)?;
    let rx = py
        .detach(move || b.receiver())
        .map_err(|e| open_error(py, e))?;
    Ok(Receiver {
        inner: Mutex::new(Some(RecvInner {
            rx,
            scratch: Vec::new(),
        })),
        size: dtype.itemsize(),
        dtype: dtype.unbind(),
        name,
        owner: Owner::current(),
    })
}

/// Opens a sender; options as [`open_receiver`].
#[pyfunction]
fn open_sender(
    py: Python<'_>,
    dtype: Bound<'_, PyArrayDescr>,
    options: Options,
) -> PyResult<Sender> {
    install_fork_handler();
    let (b, name) = builder(py, &dtype, &options)?;
    let tx = py
        .detach(move || b.sender())
        .map_err(|e| open_error(py, e))?;
    Ok(Sender {
        inner: Mutex::new(Some(tx)),
        size: dtype.itemsize(),
        dtype: dtype.unbind(),
        name,
        owner: Owner::current(),
    })
}

/// What `raw::inspect` knows about a segment, as a dict.
#[pyfunction]
#[pyo3(signature = (name=None, path=None))]
fn inspect<'py>(
    py: Python<'py>,
    name: Option<String>,
    path: Option<PathBuf>,
) -> PyResult<Bound<'py, PyDict>> {
    let info = match (name, path) {
        (_, Some(path)) => raw::inspect_path(path),
        (Some(name), None) => raw::inspect(&name),
        (None, None) => return Err(PyValueError::new_err("a name or a path is needed")),
    }
    .map_err(|e| open_error(py, e))?;
    let d = PyDict::new(py);
    d.set_item("path", info.path.clone())?;
    d.set_item(
        "family",
        match info.family {
            shmchan::stats::Family::Route => "route",
            _ => "channel",
        },
    )?;
    d.set_item(
        "mode",
        match info.mode {
            Mode::Broadcast => "broadcast",
            _ => "unicast",
        },
    )?;
    d.set_item(
        "overflow",
        match info.overflow {
            Overflow::Overwrite => "overwrite",
            _ => "block",
        },
    )?;
    d.set_item("schema", info.type_name.clone())?;
    d.set_item("record_size", info.record_size)?;
    d.set_item("record_align", info.record_align)?;
    d.set_item("capacity", info.capacity)?;
    d.set_item("max_receivers", info.max_receivers)?;
    d.set_item("max_producers", info.max_producers)?;
    d.set_item("file_len", info.file_len)?;
    let created = info
        .created_at
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    d.set_item("created_at", created)?;
    d.set_item("creator_pid", info.creator_pid)?;
    Ok(d)
}

/// Unlinks the segment `name`; returns whether there was one.
#[pyfunction]
fn remove(py: Python<'_>, name: &str) -> PyResult<bool> {
    // The record type plays no part in removing a segment.
    shmchan::Route::<u8>::remove(name).map_err(|e| open_error(py, e))
}

// ---------------------------------------------------------------------------------
// Receiver

struct RecvInner {
    rx: RawReceiver,
    /// Where single records and batches land before they are copied into new numpy
    /// objects (a receive runs without the GIL, when no Python object may be made).
    scratch: Vec<u8>,
}

/// The receiving half of a segment. Made by `shmchan.Route.receiver(...)` /
/// `shmchan.Channel.receiver(...)`.
#[pyclass(module = "shmchan", frozen)]
struct Receiver {
    inner: Mutex<Option<RecvInner>>,
    dtype: Py<PyArrayDescr>,
    size: usize,
    name: String,
    owner: Owner,
}

/// Runs `f` on the open handle in `cell`, after checking the process and that no other
/// thread uses it now.
fn with_handle<T, R>(
    cell: &Mutex<Option<T>>,
    owner: &Owner,
    what: &str,
    f: impl FnOnce(&mut T) -> PyResult<R>,
) -> PyResult<R> {
    owner.check(what)?;
    let mut guard = match cell.try_lock() {
        Ok(guard) => guard,
        Err(TryLockError::WouldBlock) => {
            return Err(PyRuntimeError::new_err(format!(
                "this {what} is in use by another thread (a handle serves one thread at a \
                 time; open one per thread)"
            )))
        }
        Err(TryLockError::Poisoned(p)) => p.into_inner(),
    };
    match guard.as_mut() {
        Some(handle) => f(handle),
        None => Err(PyValueError::new_err(format!("this {what} is closed"))),
    }
}

impl Receiver {
    fn with<R>(&self, f: impl FnOnce(&mut RecvInner) -> PyResult<R>) -> PyResult<R> {
        with_handle(&self.inner, &self.owner, "receiver", f)
    }

    /// Receives up to `buf.len() / size` records into `buf`, waiting until `deadline`;
    /// `Ok(0)` on timeout.
    fn recv_many_bytes(
        py: Python<'_>,
        rx: &mut RawReceiver,
        buf: &mut [u8],
        deadline: Option<Instant>,
    ) -> PyResult<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        match rx.try_recv_many_into(buf) {
            Ok(n) => return Ok(n),
            Err(e) => match try_end(e)? {
                RecvEnd::Empty => {}
                end => return Err(end.into_err(py)),
            },
        }
        loop {
            let Some(slice) = next_slice(deadline) else {
                return Ok(0);
            };
            match py.detach(|| rx.recv_many_into_timeout(buf, slice)) {
                Ok(n) => return Ok(n),
                Err(e) => match timeout_end(e)? {
                    RecvEnd::Timeout => py.check_signals()?,
                    end => return Err(end.into_err(py)),
                },
            }
        }
    }
}

#[pymethods]
impl Receiver {
    /// Receives the next record (a copy: a `numpy.void`, or a numpy scalar for a
    /// scalar dtype), waiting up to `timeout` seconds (`None`: for ever).
    #[pyo3(signature = (timeout=None))]
    fn recv<'py>(&self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Bound<'py, PyAny>> {
        let deadline = deadline(timeout)?;
        let descr = self.dtype.bind(py);
        let size = self.size;
        self.with(|inner| {
            inner.scratch.resize(size.max(inner.scratch.len()), 0);
            let buf = &mut inner.scratch[..size];
            match inner.rx.try_recv_into(buf) {
                Ok(()) => return new_scalar(py, descr, buf),
                Err(e) => match try_end(e)? {
                    RecvEnd::Empty => {}
                    end => return Err(end.into_err(py)),
                },
            }
            loop {
                let Some(slice) = next_slice(deadline) else {
                    return Err(RecvEnd::Timeout.into_err(py));
                };
                let rx = &mut inner.rx;
                match py.detach(|| rx.recv_into_timeout(buf, slice)) {
                    Ok(()) => return new_scalar(py, descr, buf),
                    Err(e) => match timeout_end(e)? {
                        RecvEnd::Timeout => py.check_signals()?,
                        end => return Err(end.into_err(py)),
                    },
                }
            }
        })
    }

    /// The next record if one is there now, else `None`.
    fn try_recv<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let descr = self.dtype.bind(py);
        let size = self.size;
        self.with(|inner| {
            inner.scratch.resize(size.max(inner.scratch.len()), 0);
            let buf = &mut inner.scratch[..size];
            match inner.rx.try_recv_into(buf) {
                Ok(()) => new_scalar(py, descr, buf).map(Some),
                Err(e) => match try_end(e)? {
                    RecvEnd::Empty => Ok(None),
                    end => Err(end.into_err(py)),
                },
            }
        })
    }

    /// Receives 1 to `max` records as a new array, waiting up to `timeout` seconds for
    /// the first (`None`: for ever); an empty array if none came in time. Records
    /// before a lag point are returned; the next call raises `Lagged`.
    #[pyo3(signature = (max, timeout=None))]
    fn recv_many<'py>(
        &self,
        py: Python<'py>,
        max: usize,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let deadline = deadline(timeout)?;
        let descr = self.dtype.bind(py);
        let size = self.size;
        let bytes = max
            .checked_mul(size)
            .filter(|&b| b <= isize::MAX as usize)
            .ok_or_else(|| PyValueError::new_err(format!("max={max} records is too many")))?;
        self.with(|inner| {
            if inner.scratch.len() < bytes {
                inner.scratch.resize(bytes, 0);
            }
            let buf = &mut inner.scratch[..bytes];
            let n = Self::recv_many_bytes(py, &mut inner.rx, buf, deadline)?;
            new_array(py, descr, n, &buf[..n * size])
        })
    }

    /// The records there now (up to `max`) as a new array, empty if there are none.
    fn try_recv_many<'py>(&self, py: Python<'py>, max: usize) -> PyResult<Bound<'py, PyAny>> {
        self.recv_many(py, max, Some(0.0))
    }

    /// Receives 1 to `len(out)` records into the front of `out` (a writeable,
    /// C-contiguous array of this receiver's dtype), waiting up to `timeout` seconds
    /// for the first; returns how many (0 on timeout).
    #[pyo3(signature = (out, timeout=None))]
    fn recv_into(
        &self,
        py: Python<'_>,
        out: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<usize> {
        let deadline = deadline(timeout)?;
        let descr = self.dtype.bind(py);
        let array = out.cast::<PyUntypedArray>().map_err(|_| {
            PyTypeError::new_err(format!(
                "recv_into needs a numpy array of dtype {}, not {}",
                dtype_text(descr),
                out.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ))
        })?;
        if !holds_records_of(&array.dtype(), descr) {
            return Err(PyTypeError::new_err(format!(
                "recv_into needs an array of this receiver's dtype {}, not {}",
                dtype_text(descr),
                dtype_text(&array.dtype())
            )));
        }
        // SAFETY: reading the flags of a live array object.
        let flags = unsafe { (*array.as_array_ptr()).fields.flags };
        if flags & NPY_ARRAY_WRITEABLE == 0 {
            return Err(PyValueError::new_err(
                "recv_into needs a writeable array; this one is read-only",
            ));
        }
        if !array.is_c_contiguous() {
            return Err(PyValueError::new_err(
                "recv_into needs a C-contiguous array (records side by side); this one is \
                 a strided view: pass numpy.ascontiguousarray(...) or a fresh numpy.empty(n, dtype)",
            ));
        }
        let len = array.shape().iter().product::<usize>() * array.dtype().itemsize();
        // SAFETY: `data` points at the array's `size * itemsize` bytes, writeable and
        // contiguous (checked above); `out` keeps the array alive for the whole call.
        // numpy memory is plain bytes, so writing without the GIL is sound (another
        // thread writing it concurrently would only race on the values).
        let buf: &mut [u8] = unsafe {
            let data = (*array.as_array_ptr()).fields.data as *mut u8;
            if len == 0 {
                &mut []
            } else {
                std::slice::from_raw_parts_mut(data, len)
            }
        };
        self.with(|inner| Self::recv_many_bytes(py, &mut inner.rx, buf, deadline))
    }

    /// An iterator of arrays of 1 to `max` records each (`recv_many`), ending when
    /// the senders disconnect. With `skip_lag=True` a lag is counted in
    /// `lagged_total` and iteration goes on; otherwise `Lagged` is raised. With a
    /// `timeout`, an empty array is yielded when nothing came in time.
    #[pyo3(signature = (max=4096, timeout=None, skip_lag=false))]
    fn batches(
        slf: Bound<'_, Self>,
        max: usize,
        timeout: Option<f64>,
        skip_lag: bool,
    ) -> PyResult<Batches> {
        if max == 0 {
            return Err(PyValueError::new_err("max must be at least 1"));
        }
        deadline(timeout)?;
        Ok(Batches {
            rx: slf.unbind(),
            max,
            timeout,
            skip_lag,
        })
    }

    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    /// Iteration yields records until the senders disconnect.
    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        match self.recv(py, None) {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.is_instance_of::<Disconnected>(py) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Total records this receiver skipped because it lagged.
    #[getter]
    fn lagged_total(&self) -> PyResult<u64> {
        self.with(|inner| Ok(inner.rx.lagged_total()))
    }

    /// Broadcast: the sequence number of the next record this receiver will read;
    /// unicast: of the next record any receiver will take.
    #[getter]
    fn next_seq(&self) -> PyResult<u64> {
        self.with(|inner| Ok(inner.rx.next_seq()))
    }

    /// The dtype of the records.
    #[getter]
    fn dtype(&self, py: Python<'_>) -> Py<PyArrayDescr> {
        self.dtype.clone_ref(py)
    }

    /// The segment's name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// The schema id (type name) in the segment's header.
    #[getter]
    fn schema(&self) -> PyResult<String> {
        self.with(|inner| Ok(inner.rx.layout().schema().to_owned()))
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.lock().map(|g| g.is_none()).unwrap_or(true)
    }

    /// Leaves the segment (frees this receiver's entry). Idempotent.
    fn close(&self) -> PyResult<()> {
        self.owner.check("receiver")?;
        let taken = match self.inner.try_lock() {
            Ok(mut guard) => guard.take(),
            Err(TryLockError::Poisoned(p)) => p.into_inner().take(),
            Err(TryLockError::WouldBlock) => {
                return Err(PyRuntimeError::new_err(
                    "this receiver is in use by another thread; it cannot be closed now",
                ))
            }
        };
        drop(taken);
        Ok(())
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.close()?;
        Ok(false)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "<shmchan.Receiver {:?} dtype={}{}>",
            self.name,
            dtype_text(self.dtype.bind(py)),
            if self.closed() { " closed" } else { "" }
        )
    }
}

/// The iterator of `Receiver.batches()`.
#[pyclass(module = "shmchan")]
struct Batches {
    rx: Py<Receiver>,
    max: usize,
    timeout: Option<f64>,
    skip_lag: bool,
}

#[pymethods]
impl Batches {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let rx = self.rx.bind(py).get();
        loop {
            match rx.recv_many(py, self.max, self.timeout) {
                Ok(a) => return Ok(Some(a)),
                Err(e) if e.is_instance_of::<Disconnected>(py) => return Ok(None),
                Err(e) if self.skip_lag && e.is_instance_of::<Lagged>(py) => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Sender

/// The sending half of a segment. Made by `shmchan.Route.sender(...)` /
/// `shmchan.Channel.sender(...)`.
#[pyclass(module = "shmchan", frozen)]
struct Sender {
    inner: Mutex<Option<RawSender>>,
    dtype: Py<PyArrayDescr>,
    size: usize,
    name: String,
    owner: Owner,
}

fn evicted_sender() -> PyErr {
    Evicted::new_err("sender lost its role (it was judged dead); open a new one")
}

impl Sender {
    fn with<R>(&self, f: impl FnOnce(&mut RawSender) -> PyResult<R>) -> PyResult<R> {
        with_handle(&self.inner, &self.owner, "sender", f)
    }

    /// Sends the records in `src`, waiting for room until `deadline`; returns how
    /// many were sent (fewer only if the deadline passed).
    fn send_all(
        py: Python<'_>,
        tx: &mut RawSender,
        bytes: &[u8],
        size: usize,
        deadline: Option<Instant>,
    ) -> PyResult<usize> {
        let total = bytes.len() / size.max(1);
        let mut sent = match tx.try_send_many_bytes(bytes) {
            Ok(n) => n,
            Err(RawError::Channel(SendError::Evicted(_))) => return Err(evicted_sender()),
            Err(e) => return Err(length_error(&e)),
        };
        while sent < total {
            let Some(slice) = next_slice(deadline) else {
                break;
            };
            let rest = &bytes[sent * size..total * size];
            let result = py.detach(|| tx.send_many_bytes_timeout(rest, slice));
            match result {
                Ok(n) => sent += n,
                Err(RawError::Channel(SendTimeoutError::Timeout(n))) => {
                    sent += n;
                    if sent < total {
                        py.check_signals()?;
                    }
                }
                Err(RawError::Channel(SendTimeoutError::Evicted(_))) => {
                    return Err(evicted_sender())
                }
                Err(e) => return Err(length_error(&e)),
            }
        }
        Ok(sent)
    }
}

#[pymethods]
impl Sender {
    /// Sends one record (a `numpy.void` or 0-d/1-element array of this dtype, a tuple
    /// of field values, or `bytes` of one record), waiting up to `timeout` seconds
    /// (`None`: for ever) while a lossless ring is full; `TimeoutError` if it stays full.
    #[pyo3(signature = (record, timeout=None))]
    fn send(
        &self,
        py: Python<'_>,
        record: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let deadline = deadline(timeout)?;
        let descr = self.dtype.bind(py);
        let (_keep, ptr, len) = send_source(py, descr, record)?;
        if len != self.size {
            return Err(PyValueError::new_err(format!(
                "send takes one record of {} bytes, got {len} bytes (use send_many for \
                 several records)",
                self.size
            )));
        }
        // SAFETY: `_keep` owns the bytes for this call.
        let bytes = unsafe { bytes_at(ptr, len) };
        self.with(|tx| {
            match tx.try_send_bytes(bytes) {
                Ok(()) => return Ok(()),
                Err(RawError::Channel(TrySendError::Full(()))) => {}
                Err(RawError::Channel(_)) => return Err(evicted_sender()),
                Err(e) => return Err(length_error(&e)),
            }
            loop {
                let Some(slice) = next_slice(deadline) else {
                    return Err(PyTimeoutError::new_err(
                        "timed out waiting for room in the ring",
                    ));
                };
                match py.detach(|| tx.send_bytes_timeout(bytes, slice)) {
                    Ok(()) => return Ok(()),
                    Err(RawError::Channel(SendTimeoutError::Timeout(()))) => py.check_signals()?,
                    Err(RawError::Channel(_)) => return Err(evicted_sender()),
                    Err(e) => return Err(length_error(&e)),
                }
            }
        })
    }

    /// Sends one record if there is room now; returns whether it was sent.
    fn try_send(&self, py: Python<'_>, record: &Bound<'_, PyAny>) -> PyResult<bool> {
        let descr = self.dtype.bind(py);
        let (_keep, ptr, len) = send_source(py, descr, record)?;
        // SAFETY: `_keep` owns the bytes for this call.
        let bytes = unsafe { bytes_at(ptr, len) };
        self.with(|tx| match tx.try_send_bytes(bytes) {
            Ok(()) => Ok(true),
            Err(RawError::Channel(TrySendError::Full(()))) => Ok(false),
            Err(RawError::Channel(_)) => Err(evicted_sender()),
            Err(e) => Err(length_error(&e)),
        })
    }

    /// Sends every record of `records` (an array of this dtype, anything that converts
    /// to one, or `bytes` of whole records), in order, waiting for room in lossless
    /// modes up to `timeout` seconds (`None`: for ever). Returns how many were sent:
    /// all of them, or fewer if the timeout passed.
    #[pyo3(signature = (records, timeout=None))]
    fn send_many(
        &self,
        py: Python<'_>,
        records: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<usize> {
        let deadline = deadline(timeout)?;
        let descr = self.dtype.bind(py);
        let (_keep, ptr, len) = send_source(py, descr, records)?;
        // SAFETY: `_keep` owns the bytes for this call.
        let bytes = unsafe { bytes_at(ptr, len) };
        let size = self.size;
        self.with(|tx| Self::send_all(py, tx, bytes, size, deadline))
    }

    /// Sends as many records of `records` as there is room for now; returns how many.
    fn try_send_many(&self, py: Python<'_>, records: &Bound<'_, PyAny>) -> PyResult<usize> {
        self.send_many(py, records, Some(0.0))
    }

    /// Number of receivers attached (after evicting dead ones).
    fn receiver_count(&self, py: Python<'_>) -> PyResult<usize> {
        self.with(|tx| Ok(py.detach(|| tx.receiver_count())))
    }

    /// Waits until at least `n` receivers are attached, up to `timeout` seconds
    /// (`None`: for ever); returns the count reached, `TimeoutError` otherwise.
    #[pyo3(signature = (n, timeout=None))]
    fn wait_for_receivers(
        &self,
        py: Python<'_>,
        n: usize,
        timeout: Option<f64>,
    ) -> PyResult<usize> {
        let deadline = deadline(timeout)?;
        self.with(|tx| loop {
            let slice = next_slice(deadline).unwrap_or(Duration::ZERO);
            match py.detach(|| tx.wait_for_receivers(n, slice)) {
                Ok(found) => return Ok(found),
                Err(e) => {
                    if next_slice(deadline).is_none() {
                        return Err(PyTimeoutError::new_err(e.to_string()));
                    }
                    py.check_signals()?;
                }
            }
        })
    }

    /// The sequence number the next record will get (Route), or the number claimed by
    /// all producers so far (Channel).
    #[getter]
    fn next_seq(&self) -> PyResult<u64> {
        self.with(|tx| Ok(tx.next_seq()))
    }

    /// The dtype of the records.
    #[getter]
    fn dtype(&self, py: Python<'_>) -> Py<PyArrayDescr> {
        self.dtype.clone_ref(py)
    }

    /// The segment's name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.lock().map(|g| g.is_none()).unwrap_or(true)
    }

    /// Leaves the segment (its receivers see `Disconnected` once they drained it, if
    /// it was the last sender). Idempotent.
    fn close(&self) -> PyResult<()> {
        self.owner.check("sender")?;
        let taken = match self.inner.try_lock() {
            Ok(mut guard) => guard.take(),
            Err(TryLockError::Poisoned(p)) => p.into_inner().take(),
            Err(TryLockError::WouldBlock) => {
                return Err(PyRuntimeError::new_err(
                    "this sender is in use by another thread; it cannot be closed now",
                ))
            }
        };
        drop(taken);
        Ok(())
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.close()?;
        Ok(false)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "<shmchan.Sender {:?} dtype={}{}>",
            self.name,
            dtype_text(self.dtype.bind(py)),
            if self.closed() { " closed" } else { "" }
        )
    }
}

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
