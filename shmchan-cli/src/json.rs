//! The JSON form of a segment's header, stats and rates, shared by `ls --json` and
//! `stat --json`.

use std::time::SystemTime;

use serde_json::{json, Value};
use shmchan::stats::{SegmentInfo, Stats};

use crate::rates::Rates;

pub(crate) fn stats_json(
    info: &SegmentInfo,
    st: &Stats,
    name: Option<&str>,
    r: Option<&Rates>,
) -> Value {
    let rx_rate = |index: usize| {
        r.and_then(|r| r.receivers.iter().find(|(i, _)| *i == index))
            .map(|(_, x)| *x)
    };
    let mut v = json!({
        "path": info.path,
        "family": info.family.to_string(),
        "mode": format!("{:?}", info.mode),
        "overflow": format!("{:?}", info.overflow),
        "type_name": info.type_name,
        "record_size": info.record_size,
        "record_align": info.record_align,
        "capacity": info.capacity,
        "max_receivers": info.max_receivers,
        "max_producers": info.max_producers,
        "file_len": info.file_len,
        "created_at": humantime::format_rfc3339_seconds(info.created_at).to_string(),
        "created_at_unix_ns": info
            .created_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        "creator_pid": info.creator_pid,
        "stale": st.stale,
        "head": st.head,
        "published": st.published,
        "records_per_sec": r.and_then(|r| r.total),
        "sender_attaches": st.sender_attaches,
        "joins": st.joins,
        "evictions": st.evictions,
        "receivers_alive": st.live_receivers(),
        "receivers_dead": st.dead_receivers(),
        "backlog": st.backlog,
        "dead_claims": st.dead_claims,
        "rescued": st.rescued,
        "data_waiters": st.data_waiters,
        "space_waiters": st.space_waiters,
        "producers": st.producers.iter().map(|p| json!({
            "records_per_sec": p.index.and_then(|i| r.and_then(|r| r.producers.iter().find(|(j, _)| *j == i)).map(|(_, x)| *x)),
            "index": p.index,
            "pid": p.pid,
            "alive": p.alive,
            "records": p.records,
        })).collect::<Vec<_>>(),
        "receivers": st.receivers.iter().map(|rx| json!({
            "index": rx.index,
            "pid": rx.pid,
            "alive": rx.alive,
            "cursor": rx.cursor,
            "lag": rx.lag,
            "lagged": rx.lagged,
            "records_per_sec": rx_rate(rx.index),
        })).collect::<Vec<_>>(),
    });
    if let Some(name) = name {
        merge(&mut v, json!({ "name": name }));
    }
    v
}

pub(crate) fn merge(into: &mut Value, from: Value) {
    if let (Value::Object(a), Value::Object(b)) = (into, from) {
        a.extend(b);
    }
}
