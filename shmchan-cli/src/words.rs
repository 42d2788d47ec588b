//! Short phrases about a segment for the `ls` and `stat` tables: mode, sender,
//! receivers, alive or dead, live or stale.

use shmchan::stats::{SegmentInfo, Stats};
use shmchan::{Mode, Overflow};

pub(crate) fn state_word(stale: Option<bool>) -> &'static str {
    match stale {
        Some(true) => "stale",
        Some(false) => "live",
        None => "unknown",
    }
}

pub(crate) fn mode_text(info: &SegmentInfo) -> String {
    let mode = match info.mode {
        Mode::Broadcast => "broadcast",
        Mode::Unicast => "unicast",
    };
    match (info.mode, info.overflow) {
        (Mode::Broadcast, Overflow::Overwrite) => format!("{mode}/overwrite"),
        (Mode::Broadcast, Overflow::Block) => format!("{mode}/block"),
        _ => mode.to_owned(),
    }
}

pub(crate) fn sender_text(st: &Stats) -> String {
    match st.producers.as_slice() {
        [] => "-".into(),
        [p] if p.alive => p.pid.to_string(),
        [p] => format!("{} dead", p.pid),
        many => format!(
            "{} live, {} dead",
            many.iter().filter(|p| p.alive).count(),
            many.iter().filter(|p| !p.alive).count()
        ),
    }
}

pub(crate) fn receivers_text(st: &Stats) -> String {
    let (live, dead) = (st.live_receivers(), st.dead_receivers());
    if dead == 0 {
        format!("{live} live")
    } else {
        format!("{live} live, {dead} dead")
    }
}

pub(crate) fn alive_word(alive: bool) -> &'static str {
    if alive {
        "alive"
    } else {
        "dead"
    }
}
