//! Records per second between two snapshots of the same segment.

use shmchan::stats::Stats;

/// Rates between two snapshots of the same segment.
pub(crate) struct Rates {
    pub(crate) total: Option<f64>,
    /// Per receiver entry index, for entries held by the same pid in both snapshots.
    pub(crate) receivers: Vec<(usize, f64)>,
    /// Per producer entry index (`Channel`), likewise.
    pub(crate) producers: Vec<(usize, f64)>,
}

pub(crate) fn rates(now: &Stats, before: Option<&Stats>) -> Rates {
    let Some(before) = before else {
        return Rates {
            total: None,
            receivers: Vec::new(),
            producers: Vec::new(),
        };
    };
    let secs = now
        .taken_at
        .saturating_duration_since(before.taken_at)
        .as_secs_f64();
    let receivers = now
        .receivers
        .iter()
        .filter_map(|r| {
            let b = before
                .receivers
                .iter()
                .find(|b| b.index == r.index && b.pid == r.pid)?;
            let read = r.cursor.checked_sub(b.cursor)?;
            (secs > 0.0).then(|| (r.index, read as f64 / secs))
        })
        .collect();
    let producers = now
        .producers
        .iter()
        .filter_map(|p| {
            let index = p.index?;
            let b = before
                .producers
                .iter()
                .find(|b| b.index == p.index && b.pid == p.pid)?;
            let sent = p.records?.checked_sub(b.records?)?;
            (secs > 0.0).then(|| (index, sent as f64 / secs))
        })
        .collect();
    Rates {
        total: now.rate_since(before),
        receivers,
        producers,
    }
}
