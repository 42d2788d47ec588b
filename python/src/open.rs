//! Opening: options, the builder and the module's functions.

#[allow(unused_imports)]
use crate::prelude::*;
#[allow(unused_imports)]
use crate::{array::*, errors::*, fork::*, handle::*, receiver::*, sender::*, wait::*};

/// The options every open takes, mirroring the Rust builder.
#[derive(Debug, FromPyObject)]
pub(crate) struct Options {
    #[pyo3(item)]
    pub(crate) family: String,
    #[pyo3(item)]
    pub(crate) name: Option<String>,
    #[pyo3(item)]
    pub(crate) schema: String,
    #[pyo3(item)]
    pub(crate) align: usize,
    #[pyo3(item)]
    pub(crate) capacity: Option<usize>,
    #[pyo3(item)]
    pub(crate) mode: Option<String>,
    #[pyo3(item)]
    pub(crate) overflow: Option<String>,
    #[pyo3(item)]
    pub(crate) wait: Option<String>,
    #[pyo3(item)]
    pub(crate) max_receivers: Option<usize>,
    #[pyo3(item)]
    pub(crate) max_producers: Option<usize>,
    #[pyo3(item)]
    pub(crate) path: Option<PathBuf>,
    #[pyo3(item)]
    pub(crate) permissions: Option<u32>,
    #[pyo3(item)]
    pub(crate) open_timeout: Option<f64>,
}

pub(crate) fn parse_mode(s: &str) -> PyResult<Mode> {
    match s.to_ascii_lowercase().as_str() {
        "broadcast" => Ok(Mode::Broadcast),
        "unicast" => Ok(Mode::Unicast),
        _ => Err(PyValueError::new_err(format!(
            "mode must be 'broadcast' or 'unicast', not {s:?}"
        ))),
    }
}

pub(crate) fn parse_overflow(s: &str) -> PyResult<Overflow> {
    match s.to_ascii_lowercase().as_str() {
        "overwrite" => Ok(Overflow::Overwrite),
        "block" => Ok(Overflow::Block),
        _ => Err(PyValueError::new_err(format!(
            "overflow must be 'overwrite' or 'block', not {s:?}"
        ))),
    }
}

pub(crate) fn parse_wait(s: &str) -> PyResult<Wait> {
    match s.to_ascii_lowercase().as_str() {
        "spin" => Ok(Wait::Spin),
        "adaptive" => Ok(Wait::Adaptive),
        "block" => Ok(Wait::Block),
        _ => Err(PyValueError::new_err(format!(
            "wait must be 'spin', 'adaptive' or 'block', not {s:?}"
        ))),
    }
}

pub(crate) fn builder(
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
pub(crate) fn open_receiver(
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
pub(crate) fn open_sender(
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
pub(crate) fn inspect<'py>(
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
pub(crate) fn remove(py: Python<'_>, name: &str) -> PyResult<bool> {
    // The record type plays no part in removing a segment.
    shmchan::Route::<u8>::remove(name).map_err(|e| open_error(py, e))
}
