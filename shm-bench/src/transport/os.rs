//! Everyday kernel transports: a Unix domain stream socket and a named pipe, both
//! blocking, each record written and read whole.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{Ctx, Duplex, Got, Rx, Side, Tx};
use crate::payload::Payload;

/// Creates a FIFO at `path`.
pub fn mkfifo(path: &Path) -> Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    if rc != 0 {
        bail!(
            "mkfifo {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Writes records to one or more byte streams (several for a fan-out).
struct StreamTx<W> {
    outs: Vec<W>,
}

/// Reads records from a byte stream.
struct StreamRx<R> {
    input: R,
}

impl<P: Payload, W: Write> Tx<P> for StreamTx<W> {
    fn send(&mut self, msg: &P) -> Result<()> {
        for out in &mut self.outs {
            out.write_all(bytemuck::bytes_of(msg)).context("write")?;
        }
        Ok(())
    }
}

impl<P: Payload, R: Read> Rx<P> for StreamRx<R> {
    fn recv(&mut self, out: &mut P) -> Result<Got> {
        self.input
            .read_exact(bytemuck::bytes_of_mut(out))
            .context("read")?;
        Ok(Got::Msg)
    }
}

fn connect(path: &Path, timeout: Duration) -> Result<UnixStream> {
    let deadline = Instant::now() + timeout;
    loop {
        match UnixStream::connect(path) {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() > deadline => {
                return Err(e).with_context(|| format!("connect {}", path.display()))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

/// Ping-pong over one socket: B listens, A connects.
pub fn uds_duplex<P: Payload>(ctx: &mut Ctx, side: Side) -> Result<Duplex<P>> {
    let path = ctx.dir.join("uds.sock");
    let stream = match side {
        Side::B => {
            let listener = UnixListener::bind(&path).context("bind")?;
            ctx.sync()?;
            listener.accept().context("accept")?.0
        }
        Side::A => {
            ctx.sync()?;
            connect(&path, ctx.timeout)?
        }
    };
    let rx = stream.try_clone()?;
    Ok((
        Box::new(StreamTx { outs: vec![stream] }),
        Box::new(StreamRx { input: rx }),
    ))
}

/// Fan-out producer: one socket per receiver, each record written to each in turn.
pub fn uds_producer<P: Payload>(ctx: &mut Ctx) -> Result<Box<dyn Tx<P>>> {
    ctx.sync()?;
    let outs = (0..ctx.receivers)
        .map(|i| connect(&ctx.dir.join(format!("uds.{i}.sock")), ctx.timeout))
        .collect::<Result<Vec<_>>>()?;
    Ok(Box::new(StreamTx { outs }))
}

/// Stream receiver `ctx.index`.
pub fn uds_consumer<P: Payload>(ctx: &mut Ctx) -> Result<Box<dyn Rx<P>>> {
    let listener =
        UnixListener::bind(ctx.dir.join(format!("uds.{}.sock", ctx.index))).context("bind")?;
    ctx.sync()?;
    let (input, _) = listener.accept().context("accept")?;
    Ok(Box::new(StreamRx { input }))
}

fn open_fifo(path: &Path, write: bool) -> Result<File> {
    OpenOptions::new()
        .read(!write)
        .write(write)
        .open(path)
        .with_context(|| format!("open {}", path.display()))
}

/// Ping-pong over two FIFOs, opened in the same order on both sides.
pub fn pipe_duplex<P: Payload>(ctx: &mut Ctx, side: Side) -> Result<Duplex<P>> {
    ctx.sync()?;
    let a_to_b = open_fifo(&ctx.dir.join("ab.fifo"), side == Side::A)?;
    let b_to_a = open_fifo(&ctx.dir.join("ba.fifo"), side == Side::B)?;
    let (tx, rx) = match side {
        Side::A => (a_to_b, b_to_a),
        Side::B => (b_to_a, a_to_b),
    };
    Ok((
        Box::new(StreamTx { outs: vec![tx] }),
        Box::new(StreamRx { input: rx }),
    ))
}

/// Fan-out producer: one FIFO per receiver.
pub fn pipe_producer<P: Payload>(ctx: &mut Ctx) -> Result<Box<dyn Tx<P>>> {
    ctx.sync()?;
    let outs = (0..ctx.receivers)
        .map(|i| open_fifo(&ctx.dir.join(format!("{i}.fifo")), true))
        .collect::<Result<Vec<_>>>()?;
    Ok(Box::new(StreamTx { outs }))
}

/// Stream receiver `ctx.index`.
pub fn pipe_consumer<P: Payload>(ctx: &mut Ctx) -> Result<Box<dyn Rx<P>>> {
    ctx.sync()?;
    let input = open_fifo(&ctx.dir.join(format!("{}.fifo", ctx.index)), false)?;
    Ok(Box::new(StreamRx { input }))
}
