//! Errors: the exception classes and how `shmchan` errors become Python exceptions.

#[allow(unused_imports)]
use crate::prelude::*;
#[allow(unused_imports)]
use crate::{array::*, fork::*, handle::*, open::*, receiver::*, sender::*, wait::*};

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

pub(crate) fn open_error(py: Python<'_>, e: OpenError) -> PyErr {
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

pub(crate) fn lagged(py: Python<'_>, missed: u64) -> PyErr {
    let err = Lagged::new_err(format!(
        "receiver lagged behind and skipped {missed} records"
    ));
    let _ = err.value(py).setattr("missed", missed);
    err
}

pub(crate) fn length_error<E>(e: &RawError<E>) -> PyErr
where
    RawError<E>: std::fmt::Display,
{
    PyValueError::new_err(e.to_string())
}

/// What a receive ended with, other than records: the one mapping of the core's
/// receive errors to Python.
pub(crate) enum RecvEnd {
    Empty,
    Timeout,
    Lagged(u64),
    Disconnected,
    Evicted,
}

impl RecvEnd {
    pub(crate) fn into_err(self, py: Python<'_>) -> PyErr {
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

pub(crate) fn try_end(e: RawError<TryRecvError>) -> PyResult<RecvEnd> {
    match e {
        RawError::Channel(TryRecvError::Empty) => Ok(RecvEnd::Empty),
        RawError::Channel(TryRecvError::Lagged(n)) => Ok(RecvEnd::Lagged(n)),
        RawError::Channel(TryRecvError::Disconnected) => Ok(RecvEnd::Disconnected),
        RawError::Channel(TryRecvError::Evicted) => Ok(RecvEnd::Evicted),
        e => Err(length_error(&e)),
    }
}

pub(crate) fn timeout_end(e: RawError<RecvTimeoutError>) -> PyResult<RecvEnd> {
    match e {
        RawError::Channel(RecvTimeoutError::Timeout) => Ok(RecvEnd::Timeout),
        RawError::Channel(RecvTimeoutError::Lagged(n)) => Ok(RecvEnd::Lagged(n)),
        RawError::Channel(RecvTimeoutError::Disconnected) => Ok(RecvEnd::Disconnected),
        RawError::Channel(RecvTimeoutError::Evicted) => Ok(RecvEnd::Evicted),
        e => Err(length_error(&e)),
    }
}
