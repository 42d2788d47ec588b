//! [`RecordLayout`]: what a segment's records are, as far as the ring is concerned.

use bytemuck::Pod;

use crate::error::OpenError;
use crate::layout::Geometry;
use crate::options::{short_type_name, MAX_TYPE_NAME_LEN};

/// The layout of a segment's records: size, alignment and the type name (or schema
/// id) in its header. A typed open uses `RecordLayout::of::<T>()`; a raw open passes
/// one it built at run time (from a schema, a numpy dtype, or [`inspect`](super::inspect)).
/// Both are checked against the segment's header field by field.
///
/// ```
/// use shmchan::raw::RecordLayout;
///
/// #[repr(C)]
/// #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
/// struct Quote { ts_ns: u64, bid: f64, ask: f64, bid_qty: u32, ask_qty: u32, symbol: [u8; 8] }
///
/// let typed = RecordLayout::of::<Quote>();
/// assert_eq!(typed, RecordLayout::new(40, 8, "Quote")?);
/// assert!(RecordLayout::new(40, 3, "Quote").is_err()); // not a power of two
/// # Ok::<(), shmchan::OpenError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordLayout {
    size: usize,
    align: usize,
    schema: String,
}

impl RecordLayout {
    /// A layout of records of `size` bytes aligned to `align`, identified by `schema`
    /// (the type name a typed side uses: its Rust name without module path, or what
    /// it passes to [`Builder::schema`](crate::Builder::schema)).
    ///
    /// Refused with [`OpenError::InvalidOption`] (option `layout`) unless `size >= 1`,
    /// `align` is a power of two up to 4096, `size` is a multiple of `align` (as for
    /// every Rust type), and `schema` is 1 to 128 bytes ([`MAX_TYPE_NAME_LEN`](crate::MAX_TYPE_NAME_LEN)).
    pub fn new(size: usize, align: usize, schema: &str) -> Result<Self, OpenError> {
        let invalid = |reason: String| {
            Err(OpenError::InvalidOption {
                option: "layout",
                reason,
            })
        };
        if size == 0 {
            return invalid("a record size of 0 bytes (raw records have at least 1)".into());
        }
        if !align.is_power_of_two() || align > Geometry::MAX_ALIGN {
            return invalid(format!(
                "alignment {align} is not a power of two from 1 to {}",
                Geometry::MAX_ALIGN
            ));
        }
        if size % align != 0 {
            return invalid(format!(
                "size {size} is not a multiple of the alignment {align} (a Rust or aligned C \
                 struct's size always is; pad the record or lower the alignment)"
            ));
        }
        if schema.is_empty() || schema.len() > MAX_TYPE_NAME_LEN {
            return invalid(format!(
                "schema {schema:?} must be 1 to {MAX_TYPE_NAME_LEN} bytes"
            ));
        }
        Ok(RecordLayout {
            size,
            align,
            schema: schema.to_owned(),
        })
    }

    /// The layout a typed side uses for `T`: its size, alignment and type name without
    /// module path.
    pub fn of<T: Pod>() -> Self {
        RecordLayout {
            size: size_of::<T>(),
            align: align_of::<T>(),
            schema: short_type_name(std::any::type_name::<T>()),
        }
    }

    /// Bytes per record.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Alignment of a record in bytes.
    pub fn align(&self) -> usize {
        self.align
    }

    /// The type name or schema id in the segment's header.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The layout a segment's header states (validated when the segment was opened).
    pub(crate) fn from_header(size: usize, align: usize, schema: &str) -> Self {
        RecordLayout {
            size,
            align,
            schema: schema.to_owned(),
        }
    }

    /// The same layout under another schema id.
    pub(crate) fn with_schema(mut self, schema: &str) -> Self {
        schema.clone_into(&mut self.schema);
        self
    }
}

impl std::fmt::Display for RecordLayout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({} bytes, align {})",
            self.schema, self.size, self.align
        )
    }
}
