//! What the exporter says about its source on `PREFIX/meta` (JSON).

use serde_json::{json, Value};
use shmchan::raw::RecordLayout;
use shmchan::stats::{Family, SegmentInfo};
use shmchan::{Mode, Overflow};

use crate::frame::MAX_RECORDS_LEN;

/// The meta's format: 2 since frames are numbered and carry the producer's state
/// (frame magic `SCB2`), so an importer and an exporter of different versions refuse
/// each other at start rather than skip every frame.
const FORMAT: u64 = 2;

/// The source segment as the exporter describes it: enough for an importer to create
/// a mirror with the same records and policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// The source's family (the mirror is always a `Route`: the importer is its one
    /// sender).
    pub family: Family,
    /// Broadcast or unicast.
    pub mode: Mode,
    /// The source's overflow policy.
    pub overflow: Overflow,
    /// Slots in the source's ring.
    pub capacity: u64,
    /// Receiver table size of the source.
    pub max_receivers: usize,
    /// Record size in bytes.
    pub record_size: usize,
    /// Record alignment in bytes.
    pub record_align: usize,
    /// The record type's name or schema id.
    pub type_name: String,
    /// The exporter's incarnation (the frames' epoch).
    pub epoch: u64,
    /// The source segment's incarnation (the frames' source id).
    pub source_id: u64,
}

impl Meta {
    /// The description of the source `info`, exported in `epoch`.
    pub fn of(info: &SegmentInfo, epoch: u64) -> Meta {
        Meta {
            family: info.family,
            mode: info.mode,
            overflow: info.overflow,
            capacity: info.capacity,
            max_receivers: info.max_receivers,
            record_size: info.record_size,
            record_align: info.record_align,
            type_name: info.type_name.clone(),
            epoch,
            source_id: source_id(info),
        }
    }

    /// The records' layout.
    pub fn layout(&self) -> Result<RecordLayout, String> {
        RecordLayout::new(self.record_size, self.record_align, &self.type_name)
            .map_err(|e| e.to_string())
    }

    /// Checks this description (it comes from the network) and the mirror of
    /// `capacity` slots made from it: a ring capacity and receiver table the core
    /// accepts, records a frame can carry, and at most `max_mirror_bytes` of records.
    /// (A `capacity` the importer was given is checked by the core when it opens the
    /// mirror.)
    pub(crate) fn check(&self, capacity: u64, max_mirror_bytes: u64) -> Result<(), String> {
        let c = self.capacity;
        if !(2..=shmchan::MAX_CAPACITY as u64).contains(&c) || !c.is_power_of_two() {
            return Err(format!("capacity {c} is not a power of two from 2 to 2^32"));
        }
        if !(1..=shmchan::MAX_RECEIVERS).contains(&self.max_receivers) {
            return Err(format!(
                "max_receivers {} is not from 1 to {}",
                self.max_receivers,
                shmchan::MAX_RECEIVERS
            ));
        }
        if !(1..=MAX_RECORDS_LEN).contains(&self.record_size) {
            return Err(format!(
                "record size {} is not from 1 to {MAX_RECORDS_LEN} bytes (what a frame carries)",
                self.record_size
            ));
        }
        let bytes = u128::from(capacity) * self.record_size as u128;
        if bytes > u128::from(max_mirror_bytes) {
            return Err(format!(
                "a mirror of {capacity} records of {} bytes ({bytes} bytes) is larger than the \
                 limit of {max_mirror_bytes} bytes: import with a smaller --capacity, or raise \
                 --max-mirror-bytes",
                self.record_size
            ));
        }
        Ok(())
    }

    /// As JSON.
    pub fn to_json(&self) -> String {
        json!({
            "format": FORMAT,
            "family": self.family.to_string(),
            "mode": format!("{:?}", self.mode),
            "overflow": format!("{:?}", self.overflow),
            "capacity": self.capacity,
            "max_receivers": self.max_receivers,
            "record_size": self.record_size,
            "record_align": self.record_align,
            "type_name": self.type_name,
            "epoch": self.epoch.to_string(),
            "source_id": self.source_id.to_string(),
        })
        .to_string()
    }

    /// Parses [`Meta::to_json`]'s output, checking every field.
    pub fn from_json(bytes: &[u8]) -> Result<Meta, String> {
        let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
        let str_field = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("missing or non-string field `{k}`"))
        };
        let u64_field = |k: &str| {
            v.get(k)
                .and_then(Value::as_u64)
                .ok_or_else(|| format!("missing or non-integer field `{k}`"))
        };
        let big = |k: &str| {
            str_field(k)?
                .parse::<u64>()
                .map_err(|_| format!("field `{k}` is not a u64"))
        };
        let usize_field = |k: &str| {
            usize::try_from(u64_field(k)?).map_err(|_| format!("field `{k}` out of range"))
        };
        if u64_field("format")? != FORMAT {
            return Err("unknown meta format (another version of shmchan-bridge?)".into());
        }
        Ok(Meta {
            family: match str_field("family")? {
                "Route" => Family::Route,
                "Channel" => Family::Channel,
                f => return Err(format!("unknown family {f:?}")),
            },
            mode: match str_field("mode")? {
                "Broadcast" => Mode::Broadcast,
                "Unicast" => Mode::Unicast,
                m => return Err(format!("unknown mode {m:?}")),
            },
            overflow: match str_field("overflow")? {
                "Overwrite" => Overflow::Overwrite,
                "Block" => Overflow::Block,
                o => return Err(format!("unknown overflow {o:?}")),
            },
            capacity: u64_field("capacity")?,
            max_receivers: usize_field("max_receivers")?,
            record_size: usize_field("record_size")?,
            record_align: usize_field("record_align")?,
            type_name: str_field("type_name")?.to_owned(),
            epoch: big("epoch")?,
            source_id: big("source_id")?,
        })
    }
}

/// The source segment's incarnation: a hash (FNV-1a) of what its header fixed when it
/// was created, so a segment removed and created again under the same name differs.
pub fn source_id(info: &SegmentInfo) -> u64 {
    let created = info
        .created_at
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(&created.to_le_bytes());
    eat(&info.creator_pid.to_le_bytes());
    eat(&info.capacity.to_le_bytes());
    eat(&(info.record_size as u64).to_le_bytes());
    eat(info.type_name.as_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_and_bad_meta() {
        let m = Meta {
            family: Family::Channel,
            mode: Mode::Unicast,
            overflow: Overflow::Block,
            capacity: 1024,
            max_receivers: 64,
            record_size: 24,
            record_align: 8,
            type_name: "Quote".into(),
            epoch: u64::MAX,
            source_id: 42,
        };
        assert_eq!(Meta::from_json(m.to_json().as_bytes()).unwrap(), m);
        assert!(Meta::from_json(b"{").is_err());
        assert!(Meta::from_json(br#"{"format": 1}"#).is_err());
        let older = m.to_json().replace("\"format\":2", "\"format\":1");
        assert!(older.contains("\"format\":1"), "{older}");
        assert!(Meta::from_json(older.as_bytes())
            .unwrap_err()
            .contains("another version"));
    }

    #[test]
    fn a_hostile_meta_is_refused() {
        let good = Meta {
            family: Family::Route,
            mode: Mode::Broadcast,
            overflow: Overflow::Overwrite,
            capacity: 1024,
            max_receivers: 64,
            record_size: 64,
            record_align: 8,
            type_name: "Quote".into(),
            epoch: 1,
            source_id: 2,
        };
        let limit = 4 << 30;
        assert_eq!(good.check(1024, limit), Ok(()));
        let refused = |m: Meta, capacity: u64| {
            let e = m.check(capacity, limit).expect_err("a hostile meta");
            assert!(!e.is_empty());
            e
        };
        // 2^32 slots of 64 bytes: 256 GiB of records.
        let e = refused(
            Meta {
                capacity: 1 << 32,
                ..good.clone()
            },
            1 << 32,
        );
        assert!(e.contains("--capacity"), "{e}");
        // A mirror made smaller than the source's ring is fine.
        assert_eq!(
            Meta {
                capacity: 1 << 32,
                ..good.clone()
            }
            .check(1024, limit),
            Ok(())
        );
        refused(
            Meta {
                capacity: 1 << 40,
                ..good.clone()
            },
            1024,
        );
        refused(
            Meta {
                capacity: 1000,
                ..good.clone()
            },
            1024,
        );
        refused(
            Meta {
                capacity: 0,
                ..good.clone()
            },
            1024,
        );
        refused(good.clone(), 1 << 27);
        refused(
            Meta {
                max_receivers: 0,
                ..good.clone()
            },
            1024,
        );
        refused(
            Meta {
                max_receivers: usize::MAX,
                ..good.clone()
            },
            1024,
        );
        refused(
            Meta {
                record_size: 0,
                ..good.clone()
            },
            1024,
        );
        // A record no frame can carry.
        refused(
            Meta {
                record_size: MAX_RECORDS_LEN + 1,
                ..good.clone()
            },
            2,
        );
        refused(
            Meta {
                record_size: usize::MAX,
                ..good
            },
            2,
        );
    }
}
