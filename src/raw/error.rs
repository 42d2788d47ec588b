//! [`RawError`]: a buffer of the wrong length, or one of the errors of the typed API.

/// Why a raw send or receive failed: the buffer did not fit the segment's records
/// (checked before anything happens), or the operation failed as it does on the typed
/// API (`E` is [`RecvError`](crate::RecvError), [`TrySendError`](crate::TrySendError),
/// ...).
///
/// ```
/// use shmchan::{raw::RawError, RecvError};
///
/// let e: RawError<RecvError> = RecvError::Lagged(3).into();
/// assert_eq!(e.channel(), Some(&RecvError::Lagged(3)));
/// let e = RawError::<RecvError>::Length { len: 5, record_size: 4, whole: true };
/// assert_eq!(e.to_string(), "buffer of 5 bytes is not a whole number of 4-byte records");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RawError<E> {
    /// The buffer's length does not fit: a single-record call needs exactly
    /// `record_size` bytes, a batch call (`whole`) a multiple of it.
    #[error("{}", length_message(*.len, *.record_size, *.whole))]
    Length {
        /// The buffer's length in bytes.
        len: usize,
        /// The segment's record size in bytes.
        record_size: usize,
        /// `true` for a batch call (any whole number of records would do).
        whole: bool,
    },
    /// The operation failed as on the typed API.
    #[error(transparent)]
    Channel(#[from] E),
}

fn length_message(len: usize, record_size: usize, whole: bool) -> String {
    if whole {
        format!("buffer of {len} bytes is not a whole number of {record_size}-byte records")
    } else {
        format!("buffer of {len} bytes does not hold one record of {record_size} bytes")
    }
}

impl<E> RawError<E> {
    /// The error of the typed API, unless the buffer was at fault.
    pub fn channel(&self) -> Option<&E> {
        match self {
            RawError::Channel(e) => Some(e),
            RawError::Length { .. } => None,
        }
    }

    /// Whether the buffer's length was at fault.
    pub fn is_length(&self) -> bool {
        matches!(self, RawError::Length { .. })
    }
}
