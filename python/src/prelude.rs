//! The imports every module of the extension shares.

pub(crate) use std::path::PathBuf;
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
pub(crate) use std::sync::{Mutex, Once, TryLockError};
pub(crate) use std::time::{Duration, Instant};

pub(crate) use numpy::npyffi::{self, npy_intp, NpyTypes, NPY_ARRAY_WRITEABLE, PY_ARRAY_API};
pub(crate) use numpy::{PyArrayDescr, PyArrayDescrMethods, PyUntypedArray, PyUntypedArrayMethods};
pub(crate) use pyo3::create_exception;
pub(crate) use pyo3::exceptions::{
    PyException, PyFileNotFoundError, PyMemoryError, PyOSError, PyPermissionError, PyRuntimeError,
    PyTimeoutError, PyTypeError, PyValueError,
};
pub(crate) use pyo3::intern;
pub(crate) use pyo3::prelude::*;
pub(crate) use pyo3::types::{PyBytes, PyDict, PyMemoryView};
pub(crate) use shmchan::raw::{self, RawError, RawReceiver, RawSender, RecordLayout};
pub(crate) use shmchan::{
    Mode, OpenError, Overflow, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError,
    TrySendError, Wait,
};
