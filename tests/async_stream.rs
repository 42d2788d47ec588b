//! The `Stream` of a receiver (feature `stream`): what it yields after a lap, and at
//! the end, polled by hand.

mod common;

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use common::{unique_name, Cleanup};
use futures_core::Stream;
use shmchan::{RecvError, RecvStream, Route};

fn poll_next(stream: &mut RecvStream<u64>) -> Poll<Option<Result<u64, RecvError>>> {
    Pin::new(stream).poll_next(&mut Context::from_waker(Waker::noop()))
}

/// A lapped stream yields `Err(Lagged(n))`, then the records still in the ring in
/// order; once the sender is gone and the ring drained it ends, and stays ended.
#[test]
fn a_lapped_stream_reports_the_lag_then_the_records_then_ends() {
    let name = unique_name("stream-lag");
    let _cleanup = Cleanup(name.clone());
    let builder = Route::<u64>::builder(&name).capacity(8);
    let mut tx = builder.clone().sender().expect("sender");
    let mut stream = builder.receiver().expect("receiver").into_stream();
    for i in 0..20 {
        tx.send(i).expect("send");
    }
    let lag = match poll_next(&mut stream) {
        Poll::Ready(Some(Err(RecvError::Lagged(n)))) => n,
        other => panic!("expected a lag first, got {other:?}"),
    };
    let mut got = Vec::new();
    while let Poll::Ready(Some(item)) = poll_next(&mut stream) {
        got.push(item.expect("records after the lag"));
    }
    assert!(!got.is_empty(), "no record after the lag");
    assert_eq!(lag + got.len() as u64, 20, "lag {lag}, records {got:?}");
    let first = got[0];
    assert_eq!(got, (first..20).collect::<Vec<_>>());
    drop(tx);
    // The end may take the liveness check of a tick to see: wait for it.
    let end = pollster::block_on(poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)));
    assert!(end.is_none(), "{end:?}");
    assert!(matches!(poll_next(&mut stream), Poll::Ready(None)));
}
