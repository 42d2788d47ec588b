//! The `Sender` class.

#[allow(unused_imports)]
use crate::prelude::*;
#[allow(unused_imports)]
use crate::{array::*, errors::*, fork::*, handle::*, open::*, receiver::*, wait::*};

/// The sending half of a segment. Made by `shmchan.Route.sender(...)` /
/// `shmchan.Channel.sender(...)`.
#[pyclass(module = "shmchan", frozen)]
pub(crate) struct Sender {
    pub(crate) handle: Handle<RawSender>,
    pub(crate) dtype: Py<PyArrayDescr>,
    pub(crate) size: usize,
    pub(crate) name: String,
}

pub(crate) fn evicted_sender() -> PyErr {
    Evicted::new_err("sender lost its role (it was judged dead); open a new one")
}

impl Sender {
    /// Sends the records in `bytes`, waiting for room until `deadline`; returns how
    /// many were sent (fewer only if the deadline passed). An error carries how many
    /// records went out before it as its `sent` attribute.
    pub(crate) fn send_all(
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

    pub(crate) fn send_all_counted(
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

impl HandleClass for Sender {
    type Inner = RawSender;
    const CLASS: &'static str = "Sender";

    fn handle(&self) -> &Handle<RawSender> {
        &self.handle
    }

    fn dtype_descr(&self) -> &Py<PyArrayDescr> {
        &self.dtype
    }

    fn segment_name(&self) -> &str {
        &self.name
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
        self.is_closed()
    }

    /// Leaves the segment (its receivers see `Disconnected` once they drained it, if
    /// it was the last sender). Idempotent. A call of this sender waiting in another
    /// thread is ended as `Receiver.close()` ends one.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.close_handle(py)
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.exit(py)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        self.repr(py)
    }
}
