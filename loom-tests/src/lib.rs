//! loom model checks of shmchan (run with `RUSTFLAGS="--cfg loom"`).
