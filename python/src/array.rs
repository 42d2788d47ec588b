//! numpy in and out: arrays, records and the buffers a send takes.

#[allow(unused_imports)]
use crate::prelude::*;
#[allow(unused_imports)]
use crate::{errors::*, fork::*, handle::*, open::*, receiver::*, sender::*, wait::*};

/// A new array of `count` records of `descr`, uninitialised (nothing is written to
/// its memory, so a large array costs no more than the pages later written): the
/// array and its data. For a subarray record dtype numpy makes the subarray trailing
/// dimensions of the array. `MemoryError` if the memory cannot be had.
pub(crate) fn empty_array<'py>(
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
pub(crate) fn shrink_array(array: &Bound<'_, PyAny>, count: usize) -> PyResult<()> {
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
pub(crate) fn one_record<'py>(
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
pub(crate) fn holds_records_of(
    dtype: &Bound<'_, PyArrayDescr>,
    descr: &Bound<'_, PyArrayDescr>,
) -> bool {
    dtype.is_equiv_to(descr) || (descr.has_subarray() && dtype.is_equiv_to(&descr.base()))
}

pub(crate) fn dtype_text(descr: &Bound<'_, PyArrayDescr>) -> String {
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
pub(crate) fn send_source<'py>(
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
pub(crate) fn buffer_bytes<'py>(
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
pub(crate) unsafe fn bytes_at<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if len == 0 {
        return &[];
    }
    // SAFETY: as the caller promises.
    unsafe { std::slice::from_raw_parts(ptr, len) }
}
