//! Exit statuses and why a command failed.

use std::io;

/// Exit status: success.
pub(crate) const EXIT_OK: u8 = 0;
/// Exit status: an error (no such segment, corrupt, permission, I/O).
pub(crate) const EXIT_ERROR: u8 = 1;
/// Exit status: `rm` refused a segment that a live process has open.
pub(crate) const EXIT_LIVE: u8 = 3;

/// Why a command failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Writing the output failed.
    Output(io::Error),
    /// A message naming the segment and what is wrong.
    Message(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Output(e) => write!(f, "writing the output: {e}"),
            Failure::Message(m) => f.write_str(m),
        }
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Output(e)
    }
}

pub(crate) type Outcome = Result<u8, Failure>;
