//! iceoryx2 peer: ipc service, publish-subscribe, loan API (`loan_uninit` +
//! `write_payload` + `send`) and either busy-polling `receive` (as iceoryx2's own
//! publish-subscribe benchmark does) or, for the blocking comparison, its event
//! service: the publisher notifies after each send and the receiver sleeps in
//! `Listener::timed_wait` when the subscriber is empty.

use std::fmt::Debug;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use iceoryx2::node::Node;
use iceoryx2::port::listener::Listener;
use iceoryx2::port::notifier::Notifier;
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::PortFactory as _;
use iceoryx2::prelude::{
    ipc, BackpressureStrategy, LogLevel, NodeBuilder, ServiceName, ZeroCopySend,
};
use iceoryx2::service::port_factory::{event, publish_subscribe};

use super::{Ctx, Duplex, Got, Rx, Side, Tx};
use crate::payload::Payload;

/// Longest single listener sleep before the receive loop re-polls.
const TICK: Duration = Duration::from_millis(20);

fn err<E: Debug>(what: &'static str) -> impl FnOnce(E) -> anyhow::Error {
    move |e| anyhow!("iceoryx2 {what}: {e:?}")
}

/// Retries an open-or-create that raced with another process creating the same
/// service.
fn retry<T>(timeout: Duration, mut f: impl FnMut() -> Result<T>) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

fn node() -> Result<Node<ipc::Service>> {
    iceoryx2::prelude::set_log_level(LogLevel::Error);
    NodeBuilder::new()
        .create::<ipc::Service>()
        .map_err(err("node"))
}

/// How a service is set up.
#[derive(Clone, Copy)]
struct Qos {
    buffer: usize,
    lossless: bool,
    subscribers: usize,
}

fn pubsub<P: Payload + ZeroCopySend>(
    node: &Node<ipc::Service>,
    name: &str,
    qos: Qos,
    timeout: Duration,
) -> Result<publish_subscribe::PortFactory<ipc::Service, P, ()>> {
    let name = ServiceName::new(name).map_err(err("service name"))?;
    retry(timeout, || {
        node.service_builder(&name)
            .publish_subscribe::<P>()
            .history_size(0)
            .subscriber_max_buffer_size(qos.buffer)
            .max_subscribers(qos.subscribers)
            .max_publishers(1)
            .enable_safe_overflow(!qos.lossless)
            .open_or_create()
            .map_err(err("publish-subscribe service"))
    })
}

fn events(
    node: &Node<ipc::Service>,
    name: &str,
    listeners: usize,
    timeout: Duration,
) -> Result<event::PortFactory<ipc::Service>> {
    let name = ServiceName::new(&format!("{name}.ev")).map_err(err("service name"))?;
    retry(timeout, || {
        node.service_builder(&name)
            .event()
            .max_listeners(listeners)
            .max_notifiers(1)
            .open_or_create()
            .map_err(err("event service"))
    })
}

/// Sending end. Field order is drop order: ports before services before the node.
struct IoxTx<P: Payload + ZeroCopySend> {
    publisher: Publisher<ipc::Service, P, ()>,
    notifier: Option<Notifier<ipc::Service>>,
    _service: publish_subscribe::PortFactory<ipc::Service, P, ()>,
    _events: Option<event::PortFactory<ipc::Service>>,
    _node: Node<ipc::Service>,
}

/// Receiving end.
struct IoxRx<P: Payload + ZeroCopySend> {
    subscriber: Subscriber<ipc::Service, P, ()>,
    listener: Option<Listener<ipc::Service>>,
    lossy: bool,
    _service: publish_subscribe::PortFactory<ipc::Service, P, ()>,
    _events: Option<event::PortFactory<ipc::Service>>,
    _node: Node<ipc::Service>,
}

impl<P: Payload + ZeroCopySend> Tx<P> for IoxTx<P> {
    #[inline]
    fn send(&mut self, msg: &P) -> Result<()> {
        let sample = self.publisher.loan_uninit().map_err(err("loan"))?;
        let sample = sample.write_payload(*msg);
        sample.send().map_err(err("send"))?;
        if let Some(n) = &self.notifier {
            n.notify().map_err(err("notify"))?;
        }
        Ok(())
    }
}

impl<P: Payload + ZeroCopySend> Rx<P> for IoxRx<P> {
    #[inline]
    fn recv(&mut self, out: &mut P) -> Result<Got> {
        loop {
            if let Some(sample) = self.subscriber.receive().map_err(err("receive"))? {
                *out = *sample;
                return Ok(Got::Msg);
            }
            match &self.listener {
                Some(l) => {
                    l.timed_wait(|_| {}, TICK).map_err(err("listener wait"))?;
                }
                None => std::hint::spin_loop(),
            }
        }
    }

    fn silent_gaps(&self) -> bool {
        self.lossy
    }
}

fn make_tx<P: Payload + ZeroCopySend>(
    node: Node<ipc::Service>,
    name: &str,
    qos: Qos,
    event: bool,
    timeout: Duration,
) -> Result<IoxTx<P>> {
    let service = pubsub::<P>(&node, name, qos, timeout)?;
    let mut b = service.publisher_builder();
    if qos.lossless {
        b = b.backpressure_strategy(BackpressureStrategy::RetryUntilDelivered);
    }
    let publisher = b.create().map_err(err("publisher"))?;
    let (events, notifier) = if event {
        let ev = events(&node, name, qos.subscribers, timeout)?;
        let n = ev.notifier_builder().create().map_err(err("notifier"))?;
        (Some(ev), Some(n))
    } else {
        (None, None)
    };
    Ok(IoxTx {
        publisher,
        notifier,
        _service: service,
        _events: events,
        _node: node,
    })
}

fn make_rx<P: Payload + ZeroCopySend>(
    node: Node<ipc::Service>,
    name: &str,
    qos: Qos,
    event: bool,
    timeout: Duration,
) -> Result<IoxRx<P>> {
    let service = pubsub::<P>(&node, name, qos, timeout)?;
    let subscriber = service
        .subscriber_builder()
        .buffer_size(qos.buffer)
        .create()
        .map_err(err("subscriber"))?;
    let (events, listener) = if event {
        let ev = events(&node, name, qos.subscribers, timeout)?;
        let l = ev.listener_builder().create().map_err(err("listener"))?;
        (Some(ev), Some(l))
    } else {
        (None, None)
    };
    Ok(IoxRx {
        subscriber,
        listener,
        lossy: !qos.lossless,
        _service: service,
        _events: events,
        _node: node,
    })
}

/// Waits until the publisher's service shows `n` subscribers (and listeners).
fn await_peers<P: Payload + ZeroCopySend>(
    tx: &IoxTx<P>,
    n: usize,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let subs = tx._service.dynamic_config().number_of_subscribers();
        let listeners = tx
            ._events
            .as_ref()
            .map_or(n, |e| e.dynamic_config().number_of_listeners());
        if subs >= n && listeners >= n {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("iceoryx2: {subs} subscribers, {listeners} listeners of {n} after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Ping-pong over two services (`.ab`, `.ba`), configured as iceoryx2's own benchmark:
/// no history, a subscriber buffer of one, safe overflow.
pub fn duplex<P: Payload + ZeroCopySend>(
    ctx: &mut Ctx,
    side: Side,
    event: bool,
) -> Result<Duplex<P>> {
    let (out, inp) = match side {
        Side::A => ("ab", "ba"),
        Side::B => ("ba", "ab"),
    };
    let qos = Qos {
        buffer: 1,
        lossless: false,
        subscribers: 1,
    };
    let rx = make_rx::<P>(
        node()?,
        &format!("{}.{inp}", ctx.name),
        qos,
        event,
        ctx.timeout,
    )?;
    let tx = make_tx::<P>(
        node()?,
        &format!("{}.{out}", ctx.name),
        qos,
        event,
        ctx.timeout,
    )?;
    ctx.sync()?;
    await_peers(&tx, 1, ctx.timeout)?;
    Ok((Box::new(tx), Box::new(rx)))
}

fn stream_qos(ctx: &Ctx, lossless: bool) -> Qos {
    Qos {
        buffer: ctx.capacity,
        lossless,
        subscribers: ctx.receivers,
    }
}

/// Stream publisher (`RetryUntilDelivered` backpressure when lossless).
pub fn producer<P: Payload + ZeroCopySend>(
    ctx: &mut Ctx,
    event: bool,
    lossless: bool,
) -> Result<Box<dyn Tx<P>>> {
    ctx.sync()?;
    let tx = make_tx::<P>(
        node()?,
        &format!("{}.st", ctx.name),
        stream_qos(ctx, lossless),
        event,
        ctx.timeout,
    )?;
    await_peers(&tx, ctx.receivers, ctx.timeout)?;
    Ok(Box::new(tx))
}

/// Stream subscriber.
pub fn consumer<P: Payload + ZeroCopySend>(
    ctx: &mut Ctx,
    event: bool,
    lossless: bool,
) -> Result<Box<dyn Rx<P>>> {
    let rx = make_rx::<P>(
        node()?,
        &format!("{}.st", ctx.name),
        stream_qos(ctx, lossless),
        event,
        ctx.timeout,
    )?;
    ctx.sync()?;
    Ok(Box::new(rx))
}
