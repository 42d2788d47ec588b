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

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, Once, TryLockError};
use std::time::{Duration, Instant};

use numpy::npyffi::{self, npy_intp, NpyTypes, NPY_ARRAY_WRITEABLE, PY_ARRAY_API};
use numpy::{PyArrayDescr, PyArrayDescrMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::{
    PyException, PyFileNotFoundError, PyMemoryError, PyOSError, PyPermissionError, PyRuntimeError,
    PyTimeoutError, PyTypeError, PyValueError,
};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyMemoryView};
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

/// A deadline from a Python timeout in seconds (`None`: wait for ever). A timeout too
/// long for a `Duration` or for the clock (`1e19`, `inf`) waits for ever too.
fn deadline(timeout: Option<f64>) -> PyResult<Option<Instant>> {
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

/// A new array of `count` records of `descr`, uninitialised (nothing is written to
/// its memory, so a large array costs no more than the pages later written): the
/// array and its data. For a subarray record dtype numpy makes the subarray trailing
/// dimensions of the array. `MemoryError` if the memory cannot be had.
fn empty_array<'py>(
    py: Python<'py>,
    descr: &Bound<'py, PyArrayDescr>,
    count: usize,
) -> PyResult<(Bound<'py, PyAny>, *mut u8)> {
    let mut dims = [npy_intp::try_from(count)
        .map_err(|_| PyValueError::new_err(format!("{count} records are too many")))?];
    // SAFETY: `PyArray_NewFromDescr` steals a reference to the descriptor, which
    // `into_dtype_ptr` hands over; it returns a new array owning `count * itemsize`
    // bytes of uninitialised memory, or NULL with an exception set (`MemoryError` when
    // the allocation fails, `ValueError` when the size overflows).
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
        Ok((array, data))
    }
}

/// Shrinks `array` (made by [`empty_array`], referenced nowhere else) to its first
/// `count` records, giving back the memory of the rest.
fn shrink_array(array: &Bound<'_, PyAny>, count: usize) -> PyResult<()> {
    let py = array.py();
    let untyped = array.cast::<PyUntypedArray>()?;
    let mut dims: Vec<npy_intp> = untyped.shape().iter().map(|&d| d as npy_intp).collect();
    dims[0] = count as npy_intp;
    let mut shape = npyffi::PyArray_Dims {
        ptr: dims.as_mut_ptr(),
        len: dims.len() as std::os::raw::c_int,
    };
    // SAFETY: `array` is a live array; `shape` points at `dims`, which outlives the
    // call. With `refcheck` 0 numpy reallocates the data without checking for other
    // references: there are none (the caller made the array and has not shared it),
    // and nothing holds a pointer into it any more. Returns a new reference to `None`,
    // or NULL with an exception set.
    unsafe {
        let none = PY_ARRAY_API.PyArray_Resize(
            py,
            untyped.as_array_ptr(),
            &mut shape,
            0,
            npyffi::NPY_ORDER::NPY_CORDER,
        );
        Bound::from_owned_ptr_or_err(py, none).map(drop)
    }
}

/// One record of `descr`, a copy of `bytes`: what numpy gives for `a[0]` of a
/// one-record array `a` of this dtype. That is a numpy scalar (`numpy.void` for a
/// structured dtype), or for a subarray record dtype (`('<u4', (3,))`) an array of the
/// subarray's shape: numpy has no scalar of a subarray dtype.
fn one_record<'py>(
    py: Python<'py>,
    descr: &Bound<'py, PyArrayDescr>,
    bytes: &mut [u8],
) -> PyResult<Bound<'py, PyAny>> {
    debug_assert_eq!(bytes.len(), descr.itemsize());
    if descr.has_subarray() {
        let (array, data) = empty_array(py, descr, 1)?;
        // SAFETY: `data` holds one record of `itemsize` bytes (`bytes.len()`), written
        // before the array is shared.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), data, bytes.len()) };
        return array.get_item(0);
    }
    // SAFETY: without a base object numpy copies `itemsize` bytes from `data` into a
    // scalar of its own (`PyArray_Scalar`); `bytes` holds that many. The descriptor is
    // borrowed (numpy takes its own reference). Not a subarray dtype (checked above):
    // numpy cannot use a scalar of one.
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

/// `obj`'s records as bytes, for a send. A numpy array or scalar must hold records of
/// this dtype (another dtype is refused rather than cast). A buffer of bytes (any
/// object with the buffer protocol and 1-byte items: `bytes`, `bytearray`, a
/// `memoryview` of bytes, `array('B')`, a ctypes byte array, `mmap`) is taken as the
/// records' bytes as they are and must be contiguous; the length is checked against
/// the record size by the caller or the core. Anything else (a typed buffer such as
/// `array('I')`, a tuple of field values, a list of records) is converted to an array
/// of this dtype value by value, as `numpy.asarray` would, and refused if that cast
/// is not safe. Returns the object that owns the bytes (to keep alive), a pointer and
/// a length.
fn send_source<'py>(
    py: Python<'py>,
    descr: &Bound<'py, PyArrayDescr>,
    obj: &Bound<'py, PyAny>,
) -> PyResult<(Bound<'py, PyAny>, *const u8, usize)> {
    if let Ok(bytes) = obj.cast::<PyBytes>() {
        let b = bytes.as_bytes();
        return Ok((obj.clone(), b.as_ptr(), b.len()));
    }
    let numpy_dtype = obj
        .getattr("dtype")
        .ok()
        .and_then(|d| d.cast_into::<PyArrayDescr>().ok());
    match numpy_dtype {
        Some(dtype) if !holds_records_of(&dtype, descr) => {
            return Err(PyTypeError::new_err(format!(
                "records of dtype {} cannot be sent on a segment of dtype {}",
                dtype_text(&dtype),
                dtype_text(descr)
            )));
        }
        Some(_) => {}
        None => {
            if let Some(raw) = buffer_bytes(py, obj)? {
                return Ok(raw);
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

/// The bytes of `obj` if it is a buffer of bytes (`None` if it is no buffer, or one of
/// larger items, whose values numpy converts): its memory as it is, without a copy,
/// or a `ValueError` if that memory is not contiguous.
fn buffer_bytes<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
) -> PyResult<Option<(Bound<'py, PyAny>, *const u8, usize)>> {
    // A memoryview holds the object's buffer export until it is released: a bytearray
    // cannot be resized (nor an mmap closed) under a send that runs without the GIL.
    let Ok(view) = PyMemoryView::from(obj) else {
        return Ok(None);
    };
    if view.getattr(intern!(py, "itemsize"))?.extract::<usize>()? != 1 {
        return Ok(None);
    }
    if !view.getattr(intern!(py, "c_contiguous"))?.is_truthy()? {
        return Err(PyValueError::new_err(
            "a buffer is sent as its bytes, which must be contiguous; this one is strided \
             (pass bytes(...) of it, or numpy.ascontiguousarray(...))",
        ));
    }
    let len: usize = view.getattr(intern!(py, "nbytes"))?.extract()?;
    if len == 0 {
        return Ok(Some((view.into_any(), std::ptr::null(), 0)));
    }
    // The buffer's bytes as a numpy array of `u8` (its memory, not a copy, whatever the
    // view's item format): numpy reads the pointer that the C API gives it.
    // SAFETY: `PyArray_FromBuffer` steals the descriptor reference that
    // `into_dtype_ptr` hands over and returns a new reference to an array over the
    // buffer's `len` bytes whose base is `view`, or NULL with an exception set.
    let array = unsafe {
        let ptr = PY_ARRAY_API.PyArray_FromBuffer(
            py,
            view.as_ptr(),
            numpy::dtype::<u8>(py).into_dtype_ptr(),
            -1,
            0,
        );
        Bound::from_owned_ptr_or_err(py, ptr)?
    };
    let untyped = array.cast::<PyUntypedArray>()?;
    if untyped.len() != len {
        return Err(PyValueError::new_err(
            "the buffer changed size while it was read",
        ));
    }
    // SAFETY: a numpy array's `data` points at its `len` bytes; the array keeps `view`
    // (its base), and so the export, alive.
    let data = unsafe { (*untyped.as_array_ptr()).fields.data as *const u8 };
    Ok(Some((array, data, len)))
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
    if descr.has_object() {
        return Err(PyTypeError::new_err(format!(
            "dtype {} holds Python objects: shmchan records are plain bytes; use \
             fixed-size fields (numbers, 'S<n>' bytes, 'U<n>' text)",
            dtype_text(descr)
        )));
    }
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
/// validated by the Python package (native byte order, no objects) and checked for
/// objects here again (a record of Python objects would be pointers sent as bytes).
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
    let schema = rx.layout().schema().to_owned();
    // The segment's, whether set, adopted or the default (validated on open).
    let capacity = rx.capacity();
    Ok(Receiver {
        handle: Handle::new(
            RecvInner {
                rx,
                scratch: Vec::new(),
            },
            "receiver",
        ),
        size: dtype.itemsize(),
        capacity,
        dtype: dtype.unbind(),
        name,
        schema,
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
        handle: Handle::new(tx, "sender"),
        size: dtype.itemsize(),
        dtype: dtype.unbind(),
        name,
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
// Handles

/// A token per thread, to tell whether `close()` runs on the thread that is inside a
/// call on the handle (a signal handler that the call's wait ran): never 0.
fn thread_token() -> u64 {
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
struct Handle<T> {
    cell: Mutex<Option<T>>,
    /// Set by `close()`, never cleared: the handle is closed, or will be when the call
    /// inside it returns.
    closing: AtomicBool,
    /// The [`thread_token`] of the thread inside a call on this handle (0: none).
    user: AtomicU64,
    what: &'static str,
    owner: Owner,
}

impl<T: Send> Handle<T> {
    fn new(value: T, what: &'static str) -> Self {
        Handle {
            cell: Mutex::new(Some(value)),
            closing: AtomicBool::new(false),
            user: AtomicU64::new(0),
            what,
            owner: Owner::current(),
        }
    }

    fn closed_error(&self) -> PyErr {
        PyValueError::new_err(format!("this {} is closed", self.what))
    }

    /// Runs `f` on the open handle, after checking the process and that no other
    /// thread uses it now. `f` gets the `closing` flag, which a wait checks between
    /// its slices (see [`between_slices`]).
    fn with<R>(&self, f: impl FnOnce(&mut T, &AtomicBool) -> PyResult<R>) -> PyResult<R> {
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
    fn close(&self, py: Python<'_>) -> PyResult<()> {
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
    fn closed(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }
}

/// What a wait does between two slices: runs Python's signal handlers (an exception
/// from one ends the call), then ends the call if the handle was closed meanwhile.
fn between_slices(py: Python<'_>, closing: &AtomicBool, what: &str, call: &str) -> PyResult<()> {
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
fn batch_bound(max: usize, capacity: usize) -> usize {
    max.min(capacity.max(1))
}

// ---------------------------------------------------------------------------------
// Receiver

struct RecvInner {
    rx: RawReceiver,
    /// Where a single record lands before it is copied into a new numpy object (a
    /// receive runs without the GIL, when no Python object may be made): one record.
    scratch: Vec<u8>,
}

/// The receiving half of a segment. Made by `shmchan.Route.receiver(...)` /
/// `shmchan.Channel.receiver(...)`.
#[pyclass(module = "shmchan", frozen)]
struct Receiver {
    handle: Handle<RecvInner>,
    dtype: Py<PyArrayDescr>,
    size: usize,
    /// The ring's capacity: the most records one batch receive asks for.
    capacity: usize,
    name: String,
    /// The layout's schema, kept outside the handle's lock (it never changes).
    schema: String,
}

impl Receiver {
    fn with<R>(&self, f: impl FnOnce(&mut RecvInner, &AtomicBool) -> PyResult<R>) -> PyResult<R> {
        self.handle.with(f)
    }

    /// Receives up to `buf.len() / size` records into `buf`, waiting until `deadline`;
    /// `Ok(0)` on timeout.
    fn recv_many_bytes(
        py: Python<'_>,
        rx: &mut RawReceiver,
        closing: &AtomicBool,
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
                    RecvEnd::Timeout => between_slices(py, closing, "receiver", "a receive")?,
                    end => return Err(end.into_err(py)),
                },
            }
        }
    }

    /// The scratch of one record, allocated on first use (`MemoryError` if it cannot be).
    fn record_buf(scratch: &mut Vec<u8>, size: usize) -> PyResult<&mut [u8]> {
        if scratch.len() < size {
            scratch
                .try_reserve_exact(size - scratch.len())
                .map_err(|_| PyMemoryError::new_err(format!("a record of {size} bytes")))?;
            scratch.resize(size, 0);
        }
        Ok(&mut scratch[..size])
    }
}

#[pymethods]
impl Receiver {
    /// Receives the next record (a copy, as numpy gives one record of this dtype: a
    /// `numpy.void` for a structured dtype, a numpy scalar for a scalar dtype, an
    /// array for a subarray dtype), waiting up to `timeout` seconds (`None`: for ever).
    #[pyo3(signature = (timeout=None))]
    fn recv<'py>(&self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Bound<'py, PyAny>> {
        let deadline = deadline(timeout)?;
        let descr = self.dtype.bind(py);
        let size = self.size;
        self.with(|inner, closing| {
            let buf = Self::record_buf(&mut inner.scratch, size)?;
            match inner.rx.try_recv_into(buf) {
                Ok(()) => return one_record(py, descr, buf),
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
                    Ok(()) => return one_record(py, descr, buf),
                    Err(e) => match timeout_end(e)? {
                        RecvEnd::Timeout => between_slices(py, closing, "receiver", "recv")?,
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
        self.with(|inner, _| {
            let buf = Self::record_buf(&mut inner.scratch, size)?;
            match inner.rx.try_recv_into(buf) {
                Ok(()) => one_record(py, descr, buf).map(Some),
                Err(e) => match try_end(e)? {
                    RecvEnd::Empty => Ok(None),
                    end => Err(end.into_err(py)),
                },
            }
        })
    }

    /// Receives 1 to `max` records as a new array, waiting up to `timeout` seconds for
    /// the first (`None`: for ever); an empty array if none came in time. Records
    /// before a lag point are returned; the next call raises `Lagged`. At most the
    /// ring's capacity is returned at once, so a large `max` costs no more memory than
    /// the ring's capacity of records.
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
        let count = batch_bound(max, self.capacity);
        let bytes = count
            .checked_mul(size)
            .filter(|&b| b <= isize::MAX as usize)
            .ok_or_else(|| PyMemoryError::new_err(format!("{count} records of {size} bytes")))?;
        // Received straight into the array returned, which is then cut to the records
        // received: no scratch, no zero-filling.
        let (array, data) = empty_array(py, descr, count)?;
        let buf: &mut [u8] = if bytes == 0 {
            &mut []
        } else {
            // SAFETY: `data` points at the new array's `count * size` bytes (`bytes`),
            // which no one else sees until this returns; `array` keeps them alive. numpy
            // memory is plain bytes, so writing it without the GIL is sound.
            unsafe { std::slice::from_raw_parts_mut(data, bytes) }
        };
        let n = self.with(|inner, closing| {
            Self::recv_many_bytes(py, &mut inner.rx, closing, buf, deadline)
        })?;
        if n < count {
            shrink_array(&array, n)?;
        }
        Ok(array)
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
        self.with(|inner, closing| Self::recv_many_bytes(py, &mut inner.rx, closing, buf, deadline))
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
        self.with(|inner, _| Ok(inner.rx.lagged_total()))
    }

    /// Broadcast: the sequence number of the next record this receiver will read;
    /// unicast: of the next record any receiver will take.
    #[getter]
    fn next_seq(&self) -> PyResult<u64> {
        self.with(|inner, _| Ok(inner.rx.next_seq()))
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

    /// The schema id (type name) in the segment's header. Never waits for a call in
    /// progress.
    #[getter]
    fn schema(&self) -> &str {
        &self.schema
    }

    /// The ring's capacity: the segment's, whether set, adopted from an existing
    /// segment or the default. Never waits for a call in progress.
    #[getter]
    fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether `close()` was called. Never waits for a call in progress.
    #[getter]
    fn closed(&self) -> bool {
        self.handle.closed()
    }

    /// Leaves the segment (frees this receiver's entry). Idempotent. A call of this
    /// receiver waiting in another thread is ended (it raises `ValueError`, closed)
    /// within 50 ms, and `close()` returns once it has; from a signal handler that
    /// interrupted a call of this receiver, that call ends likewise when the handler
    /// returns.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.handle.close(py)
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.close(py)?;
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
    handle: Handle<RawSender>,
    dtype: Py<PyArrayDescr>,
    size: usize,
    name: String,
}

fn evicted_sender() -> PyErr {
    Evicted::new_err("sender lost its role (it was judged dead); open a new one")
}

impl Sender {
    fn with<R>(&self, f: impl FnOnce(&mut RawSender, &AtomicBool) -> PyResult<R>) -> PyResult<R> {
        self.handle.with(f)
    }

    /// Sends the records in `bytes`, waiting for room until `deadline`; returns how
    /// many were sent (fewer only if the deadline passed). An error carries how many
    /// records went out before it as its `sent` attribute.
    fn send_all(
        py: Python<'_>,
        tx: &mut RawSender,
        closing: &AtomicBool,
        bytes: &[u8],
        size: usize,
        deadline: Option<Instant>,
    ) -> PyResult<usize> {
        let mut sent = 0;
        Self::send_all_counted(py, tx, closing, bytes, size, deadline, &mut sent).inspect_err(|e| {
            let _ = e.value(py).setattr(intern!(py, "sent"), sent);
        })
    }

    fn send_all_counted(
        py: Python<'_>,
        tx: &mut RawSender,
        closing: &AtomicBool,
        bytes: &[u8],
        size: usize,
        deadline: Option<Instant>,
        sent: &mut usize,
    ) -> PyResult<usize> {
        let total = bytes.len() / size.max(1);
        *sent = match tx.try_send_many_bytes(bytes) {
            Ok(n) => n,
            Err(RawError::Channel(SendError::Evicted(n))) => {
                *sent = n;
                return Err(evicted_sender());
            }
            Err(e) => return Err(length_error(&e)),
        };
        while *sent < total {
            let Some(slice) = next_slice(deadline) else {
                break;
            };
            let rest = &bytes[*sent * size..total * size];
            let result = py.detach(|| tx.send_many_bytes_timeout(rest, slice));
            match result {
                Ok(n) => *sent += n,
                Err(RawError::Channel(SendTimeoutError::Timeout(n))) => {
                    *sent += n;
                    if *sent < total {
                        between_slices(py, closing, "sender", "send_many")?;
                    }
                }
                Err(RawError::Channel(SendTimeoutError::Evicted(n))) => {
                    *sent += n;
                    return Err(evicted_sender());
                }
                Err(e) => return Err(length_error(&e)),
            }
        }
        Ok(*sent)
    }
}

#[pymethods]
impl Sender {
    /// Sends one record (a `numpy.void` or 0-d/1-element array of this dtype, a tuple
    /// of field values, or a bytes-like buffer of one record), waiting up to `timeout` seconds
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
        self.with(|tx, closing| {
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
                    Err(RawError::Channel(SendTimeoutError::Timeout(()))) => {
                        between_slices(py, closing, "sender", "send")?
                    }
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
        self.with(|tx, _| match tx.try_send_bytes(bytes) {
            Ok(()) => Ok(true),
            Err(RawError::Channel(TrySendError::Full(()))) => Ok(false),
            Err(RawError::Channel(_)) => Err(evicted_sender()),
            Err(e) => Err(length_error(&e)),
        })
    }

    /// Sends every record of `records` (an array of this dtype, anything that converts
    /// safely to one, or a contiguous bytes-like buffer of whole records: `bytes`,
    /// `bytearray`, `memoryview`, `array('B')`), in order, waiting for room in
    /// lossless modes up to `timeout` seconds (`None`: for ever). Returns how many were
    /// sent: all of them, or fewer if the timeout passed. An exception that ends it
    /// (Ctrl-C's `KeyboardInterrupt`, `close()` from another thread) carries how many
    /// were sent before as `.sent`.
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
        self.with(|tx, closing| Self::send_all(py, tx, closing, bytes, size, deadline))
    }

    /// Sends as many records of `records` as there is room for now; returns how many.
    fn try_send_many(&self, py: Python<'_>, records: &Bound<'_, PyAny>) -> PyResult<usize> {
        self.send_many(py, records, Some(0.0))
    }

    /// Number of receivers attached (after evicting dead ones).
    fn receiver_count(&self, py: Python<'_>) -> PyResult<usize> {
        self.with(|tx, _| Ok(py.detach(|| tx.receiver_count())))
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
        self.with(|tx, closing| loop {
            let slice = next_slice(deadline).unwrap_or(Duration::ZERO);
            match py.detach(|| tx.wait_for_receivers(n, slice)) {
                Ok(found) => return Ok(found),
                Err(e) => {
                    if next_slice(deadline).is_none() {
                        return Err(PyTimeoutError::new_err(e.to_string()));
                    }
                    between_slices(py, closing, "sender", "wait_for_receivers")?;
                }
            }
        })
    }

    /// The sequence number the next record will get (Route), or the number claimed by
    /// all producers so far (Channel).
    #[getter]
    fn next_seq(&self) -> PyResult<u64> {
        self.with(|tx, _| Ok(tx.next_seq()))
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

    /// Whether `close()` was called. Never waits for a call in progress.
    #[getter]
    fn closed(&self) -> bool {
        self.handle.closed()
    }

    /// Leaves the segment (its receivers see `Disconnected` once they drained it, if
    /// it was the last sender). Idempotent. A call of this sender waiting in another
    /// thread is ended as `Receiver.close()` ends one.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.handle.close(py)
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.close(py)?;
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
