use super::*;

#[test]
fn names_are_unique_and_round_trip() {
    for (i, (name, t)) in ALL.iter().enumerate() {
        assert!(
            ALL[..i].iter().all(|(n, u)| n != name && u != t),
            "{name} listed twice"
        );
        assert_eq!(t.name(), *name);
        if !t.is_peer() || cfg!(feature = "peers") {
            assert_eq!(Transport::parse(name).expect("known"), *t);
        }
    }
}

#[test]
fn shmchan_variants_are_classified() {
    for &(name, t) in ALL {
        // Every twin is a listed transport that sleeps.
        let twin = t.blocking_twin();
        assert!(twin.blocking(), "{name}: twin {} spins", twin.name());
        assert_eq!(t.blocking(), !t.spins(), "{name}");
        if let Shmchan {
            family,
            delivery,
            wait,
            loan,
            batch,
            style,
        } = t
        {
            // `-ref` is the last part of the name: in place, lossless, one at a time;
            // `-try` likewise: `try_recv` in a loop, one at a time, spinning.
            let name = if let Some(base) = name.strip_suffix("-ref") {
                assert!(style == RecvStyle::Ref && !loan && batch == 0, "{name}");
                assert_ne!(delivery, Delivery::Overwrite, "{name}");
                base
            } else if let Some(base) = name.strip_suffix("-try") {
                assert!(style == RecvStyle::TryLoop && !loan && batch == 0, "{name}");
                assert_eq!(wait, Spin, "{name}");
                base
            } else {
                assert_eq!(style, RecvStyle::Recv, "{name}");
                name
            };
            // `-batchN` is the last part of the name, N the batch field.
            let (base, n) = match name.rsplit_once("-batch") {
                Some((base, n)) => (base, n.parse::<u16>().expect("batch size")),
                None => (name, 0),
            };
            assert_eq!(n, batch, "{name}");
            assert!(batch != 1, "{name}: a batch of one is the per-record path");
            assert!(!loan || batch == 0, "{name}: no loans in batches");
            assert_eq!(t.throughput_only(), batch > 1, "{name}");
            assert_eq!(t.batch(), usize::from(batch).max(1), "{name}");
            if batch > 1 {
                // The same transport one record at a time is listed too.
                let single = sc(family, delivery, wait, false);
                assert_eq!(single.name(), base, "{name}");
            }
            let name = base;
            assert_eq!(t.blocking(), wait == Block, "{name}");
            assert_eq!(t.broadcasts(), delivery != Delivery::Unicast, "{name}");
            // Loans are offered only where they go straight into the slot.
            assert!(!loan || delivery != Delivery::Overwrite, "{name}");
            assert_eq!(
                name.contains("-channel"),
                family == Family::Channel,
                "{name}"
            );
            assert_eq!(
                name.contains("-unicast"),
                delivery == Delivery::Unicast,
                "{name}"
            );
            assert_eq!(
                name.ends_with("-lossless"),
                delivery == Delivery::Lossless && !loan,
                "{name}"
            );
            assert_eq!(name.ends_with("-loan"), loan, "{name}");
            match twin {
                Shmchan {
                    family: f,
                    delivery: d,
                    wait: Block,
                    loan: false,
                    batch: 0,
                    style: RecvStyle::Recv,
                } => assert_eq!((f, d), (family, delivery), "{name}"),
                other => panic!("{name}: twin {other:?}"),
            }
        } else {
            assert!(t.broadcasts(), "{name}");
        }
    }
}

#[test]
fn batch_names_parse() {
    let t = Transport::parse("shmchan-spin-lossless-batch16").expect("listed");
    assert_eq!(t, scb(R, LOSSLESS, Spin, 16));
    assert_eq!(t.batch(), 16);
    assert_eq!(
        Transport::parse("shmchan-spin-lossless-batch256").expect("listed"),
        scb(R, LOSSLESS, Spin, 256)
    );
    assert_eq!(
        Transport::parse("shmchan-unicast-spin-batch16").expect("listed"),
        scb(R, UNICAST, Spin, 16)
    );
    assert_eq!(
        Transport::parse("shmchan-channel-spin-lossless-batch16").expect("listed"),
        scb(C, LOSSLESS, Spin, 16)
    );
    assert_eq!(
        Transport::parse("shmchan-spin-lossless")
            .expect("listed")
            .batch(),
        1
    );
    assert_eq!(Transport::Floor.batch(), 1);
    // No loans in batches, no unlisted sizes, the suffix goes last.
    for bad in [
        "shmchan-spin-loan-batch16",
        "shmchan-spin-lossless-batch",
        "shmchan-spin-lossless-batch1",
        "shmchan-spin-lossless-batch17",
        "shmchan-spin-batch16-lossless",
        "floor-batch16",
    ] {
        let e = Transport::parse(bad).expect_err(bad).to_string();
        assert!(e.contains("unknown transport"), "{bad}: {e}");
    }
}

#[test]
fn batches_are_throughput_only() {
    for &(name, t) in ALL {
        if t.throughput_only() {
            assert!(name.contains("-batch"), "{name}");
            assert!(!t.blocking_twin().throughput_only(), "{name}");
        }
    }
}
