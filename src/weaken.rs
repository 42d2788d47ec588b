//! Switches for the weakened builds that `loom-tests/run.sh` uses to show that the
//! models have teeth: `--cfg shmchan_weaken="NAME"` weakens the one ordering or fence
//! named `NAME`, and the matching loom model must then fail. In every other build each
//! switch is the strong choice, decided at compile time. One line per site:
//!
//! ```text
//! if !weaken!("r2") { fence(Acquire) }                 // drop a fence
//! stamp.store(done, ordering!("w2", Release, Relaxed)) // weaken an ordering
//! light_fence!("f_p")                                  // light fence, or AcqRel
//! ```

/// `true` only in the build weakened at `$name`.
macro_rules! weaken {
    ($name:tt) => {
        cfg!(shmchan_weaken = $name)
    };
}

/// The ordering `$strong`, or `$weak` in the build weakened at `$name`.
macro_rules! ordering {
    ($name:tt, $strong:ident, $weak:ident) => {
        if cfg!(shmchan_weaken = $name) {
            $crate::sync::Ordering::$weak
        } else {
            $crate::sync::Ordering::$strong
        }
    };
}

/// The light half of an asymmetric fence pair (`barrier.rs`), or `fence(AcqRel)`
/// (which does not order a store before a later load) in the build weakened at `$name`.
macro_rules! light_fence {
    ($name:tt) => {
        if cfg!(shmchan_weaken = $name) {
            $crate::sync::fence($crate::sync::Ordering::AcqRel)
        } else {
            $crate::barrier::light()
        }
    };
}

/// `fence(SeqCst)`, or `fence(AcqRel)` in the build weakened at `$name`.
macro_rules! seqcst_fence {
    ($name:tt) => {
        $crate::sync::fence($crate::weaken::ordering!($name, SeqCst, AcqRel))
    };
}

/// The heavy half of an asymmetric fence pair (`barrier.rs`), returning whether it
/// covers light peers; `fence(AcqRel)` (and `true`) in the build weakened at `$name`.
macro_rules! heavy_fence {
    ($name:tt) => {
        if cfg!(shmchan_weaken = $name) {
            $crate::sync::fence($crate::sync::Ordering::AcqRel);
            true
        } else {
            $crate::barrier::heavy()
        }
    };
}

pub(crate) use {heavy_fence, light_fence, ordering, seqcst_fence, weaken};
