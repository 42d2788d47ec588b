//! The `Receiver` class and its `batches()` iterator.

#[allow(unused_imports)]
use crate::prelude::*;
#[allow(unused_imports)]
use crate::{array::*, errors::*, fork::*, handle::*, open::*, sender::*, wait::*};

pub(crate) struct RecvInner {
    pub(crate) rx: RawReceiver,
    /// Where a single record lands before it is copied into a new numpy object (a
    /// receive runs without the GIL, when no Python object may be made): one record.
    pub(crate) scratch: Vec<u8>,
}

/// The receiving half of a segment. Made by `shmchan.Route.receiver(...)` /
/// `shmchan.Channel.receiver(...)`.
#[pyclass(module = "shmchan", frozen)]
pub(crate) struct Receiver {
    pub(crate) handle: Handle<RecvInner>,
    pub(crate) dtype: Py<PyArrayDescr>,
    pub(crate) size: usize,
    /// The ring's capacity: the most records one batch receive asks for.
    pub(crate) capacity: usize,
    pub(crate) name: String,
    /// The layout's schema, kept outside the handle's lock (it never changes).
    pub(crate) schema: String,
}

impl Receiver {
    /// Receives up to `buf.len() / size` records into `buf`, waiting until `deadline`;
    /// `Ok(0)` on timeout.
    pub(crate) fn recv_many_bytes(
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
    pub(crate) fn record_buf(scratch: &mut Vec<u8>, size: usize) -> PyResult<&mut [u8]> {
        if scratch.len() < size {
            scratch
                .try_reserve_exact(size - scratch.len())
                .map_err(|_| PyMemoryError::new_err(format!("a record of {size} bytes")))?;
            scratch.resize(size, 0);
        }
        Ok(&mut scratch[..size])
    }
}

impl HandleClass for Receiver {
    type Inner = RecvInner;
    const CLASS: &'static str = "Receiver";

    fn handle(&self) -> &Handle<RecvInner> {
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
        self.is_closed()
    }

    /// Leaves the segment (frees this receiver's entry). Idempotent. A call of this
    /// receiver waiting in another thread is ended (it raises `ValueError`, closed)
    /// within 50 ms, and `close()` returns once it has; from a signal handler that
    /// interrupted a call of this receiver, that call ends likewise when the handler
    /// returns.
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

/// The iterator of `Receiver.batches()`.
#[pyclass(module = "shmchan")]
pub(crate) struct Batches {
    pub(crate) rx: Py<Receiver>,
    pub(crate) max: usize,
    pub(crate) timeout: Option<f64>,
    pub(crate) skip_lag: bool,
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
