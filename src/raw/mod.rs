//! Records whose layout is known only at run time: a tool, a Python reader or a
//! bridge opens a segment with a [`RecordLayout`] instead of a `T: Pod`, and moves
//! records as bytes.
//!
//! This is not a second implementation: [`RawSender`] and [`RawReceiver`] are the
//! sending and receiving halves, and the typed [`Sender<T>`](crate::Sender) and
//! [`Receiver<T>`](crate::Receiver) are thin wrappers over them that view a `T` as
//! its bytes. Same protocol, same opening checks (a raw side must match the
//! segment's size, alignment and schema exactly like a typed one, or gets
//! [`OpenError::Mismatch`] naming the field and both values), same errors; a raw
//! side and a typed side share a segment in either direction.
//!
//! Buffers are checked where they come in: a single-record call takes exactly one
//! record's bytes, a batch call a whole number of records, and anything else is a
//! [`RawError::Length`], never a panic. Any byte alignment will do.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use shmchan::{raw, Overflow, Route};
//!
//! # let name = format!("doc-raw-{}", std::process::id());
//! // A typed producer...
//! let mut tx = Route::<[u32; 3]>::builder(&name).overflow(Overflow::Block).sender()?;
//! tx.send_many(&[[1, 2, 3], [4, 5, 6]])?;
//!
//! // ...and a reader that learns the layout from the segment itself (the options it
//! // leaves unset adopt the segment's, see `Builder`).
//! let info = raw::inspect(&name)?;
//! assert_eq!((info.record_size, info.type_name.as_str()), (12, "[u32; 3]"));
//! let mut rx = raw::route(&name, info.layout()).receiver()?;
//! assert_eq!(rx.overflow(), Overflow::Block);
//! tx.send([7, 8, 9])?;
//! let mut buf = vec![0u8; 2 * info.record_size];
//! let n = rx.recv_many_into(&mut buf)?; // records published after it joined
//! assert_eq!(n, 1);
//! assert_eq!(&buf[..12], bytemuck::bytes_of(&[7u32, 8, 9]));
//! assert!(rx.recv_many_into(&mut buf[..5]).is_err()); // not a whole number of records
//! # drop((tx, rx)); Route::<[u32; 3]>::remove(&name)?;
//! # Ok(()) }
//! ```

mod error;
mod layout;
pub(crate) mod receiver;
pub(crate) mod sender;

use std::path::Path;

pub use error::RawError;
pub use layout::RecordLayout;
pub use receiver::RawReceiver;
pub use sender::RawSender;

use crate::builder::Builder;
use crate::error::OpenError;
use crate::options::Family;
use crate::stats::{Observer, SegmentInfo};

/// The record type of a [`Builder`] opened with an explicit [`RecordLayout`]
/// ([`route`], [`channel`]): its `sender()` and `receiver()` give a [`RawSender`] and a
/// [`RawReceiver`]. Never constructed.
#[derive(Debug, Clone, Copy)]
pub enum Raw {}

/// A builder for the `Route` segment `name` with records of `layout`: every option of
/// [`Route::builder`](crate::Route::builder), then `.sender()` or `.receiver()`.
pub fn route(name: &str, layout: RecordLayout) -> Builder<Raw> {
    Builder::with_layout(name, Family::Route, layout)
}

/// A builder for the `Channel` segment `name` with records of `layout`: every option
/// of [`Channel::builder`](crate::Channel::builder), then `.sender()` or `.receiver()`.
pub fn channel(name: &str, layout: RecordLayout) -> Builder<Raw> {
    Builder::with_layout(name, Family::Channel, layout)
}

/// What the segment `name` is (family, mode, overflow, capacity, record layout, ...),
/// read from its header without joining it: no receiver entry is taken and nothing
/// is written. Errors as [`Observer::open`] (e.g. [`OpenError::Io`] with
/// `io::ErrorKind::NotFound` if there is no such segment).
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use shmchan::{raw, stats::Family, Mode, Route};
///
/// # let name = format!("doc-inspect-{}", std::process::id());
/// let _rx = Route::<u64>::builder(&name).capacity(64).receiver()?;
/// let info = raw::inspect(&name)?;
/// assert_eq!((info.family, info.mode, info.capacity), (Family::Route, Mode::Broadcast, 64));
/// assert_eq!(info.layout(), raw::RecordLayout::of::<u64>());
/// # drop(_rx); Route::<u64>::remove(&name)?;
/// # Ok(()) }
/// ```
pub fn inspect(name: &str) -> Result<SegmentInfo, OpenError> {
    Ok(Observer::open(name)?.info().clone())
}

/// [`inspect`] for the segment in the file `path`.
pub fn inspect_path(path: impl AsRef<Path>) -> Result<SegmentInfo, OpenError> {
    Ok(Observer::open_path(path)?.info().clone())
}
