//! The bulk part of a record copy: whole 64-byte blocks moved with 16-byte vector loads
//! and stores in inline assembly (x86_64), four times fewer instructions than one
//! relaxed atomic load or store per 8-byte word.
//!
//! # Why this is sound
//!
//! A record's words are read while another process may be writing them: the seqlock
//! (`seqlock.rs`) lets the copy race and keeps only copies whose stamp did not change.
//! In Rust's memory model such a racing copy must not be a plain `memcpy` (a data race
//! is undefined behaviour whatever the stamps say afterwards); relaxed atomic loads
//! are fine. Inline assembly is opaque to the compiler: it must assume the block reads
//! and writes the memory it is given pointers to, and the block's effect must be one
//! that Rust code could have had. Here that is a sequence of relaxed atomic loads of
//! the slot's aligned 8-byte words and plain stores to the caller's buffer (or, when
//! writing a record, plain loads from the caller's record and relaxed atomic stores of
//! the slot's words), which is what the hardware does: slot words are 8-byte aligned
//! (`Geometry`), x86 performs every access to an aligned quadword as a single-copy
//! atomic unit, and a 16-byte `movdqu` is at worst several such accesses; there is no
//! ordering beyond TSO, which relaxed atomics do not exceed either. So every access to
//! a slot's data words, here or in the word path, is a relaxed 8-byte atomic access of
//! an aligned word: no mixed sizes, no non-atomic access. The fences of the seqlock
//! (W1 before the writer's stores, R2 after the reader's loads) order the block like
//! any other atomic access, and a copy that saw any word of a later write is
//! discarded by the stamp check. (The `atomic-memcpy` crate argues its x86 assembly
//! the same way.)
//!
//! Under loom, and on other targets, every word goes through the word path: the
//! seqlock argument the models check does not depend on how the words between the
//! stamp checks are moved.

use crate::sync::AtomicU64;

/// Bytes of `len` moved by the bulk path: whole 64-byte blocks on x86_64, none
/// elsewhere (and under loom).
#[inline(always)]
pub(crate) const fn bulk_len(len: usize) -> usize {
    if cfg!(all(target_arch = "x86_64", not(loom))) {
        len & !63
    } else {
        0
    }
}

/// Copies `dst.len()` bytes (a multiple of 64, at most `8 * words.len()`) out of the
/// slot words `words`.
#[cfg(all(target_arch = "x86_64", not(loom)))]
#[inline(always)]
pub(crate) fn load(words: &[AtomicU64], dst: &mut [u8]) {
    let len = dst.len();
    debug_assert!(len % 64 == 0 && len <= words.len() * 8);
    if len == 0 || len > words.len() * 8 {
        return;
    }
    // SAFETY: `words` holds at least `len` bytes (checked above) and `dst` exactly
    // `len`, a multiple of 64, so each of the `len / 64` rounds reads and writes 64
    // in-bounds bytes; unaligned `movdqu` needs no alignment. `dst` is an exclusive
    // borrow, so nothing else reads or writes it. The slot words may be written
    // concurrently by another process: see the module doc for why these loads are
    // relaxed atomic word loads in Rust's memory model. The block touches no stack and
    // clobbers only the registers declared.
    unsafe {
        core::arch::asm!(
            "2:",
            "movdqu {a}, [{src}]",
            "movdqu {b}, [{src} + 16]",
            "movdqu {c}, [{src} + 32]",
            "movdqu {d}, [{src} + 48]",
            "movdqu [{dst}], {a}",
            "movdqu [{dst} + 16], {b}",
            "movdqu [{dst} + 32], {c}",
            "movdqu [{dst} + 48], {d}",
            "add {src}, 64",
            "add {dst}, 64",
            "sub {len}, 64",
            "jnz 2b",
            src = inout(reg) words.as_ptr().cast::<u8>() => _,
            dst = inout(reg) dst.as_mut_ptr() => _,
            len = inout(reg) len => _,
            a = out(xmm_reg) _,
            b = out(xmm_reg) _,
            c = out(xmm_reg) _,
            d = out(xmm_reg) _,
            options(nostack),
        );
    }
}

/// Copies `src` (a multiple of 64 bytes, at most `8 * words.len()`) into the slot words
/// `words`. The writer half of [`load`].
#[cfg(all(target_arch = "x86_64", not(loom)))]
#[inline(always)]
pub(crate) fn store(words: &[AtomicU64], src: &[u8]) {
    let len = src.len();
    debug_assert!(len % 64 == 0 && len <= words.len() * 8);
    if len == 0 || len > words.len() * 8 {
        return;
    }
    // SAFETY: `words` holds at least `len` bytes (checked above) and `src` exactly
    // `len`, a multiple of 64: every access is in bounds. The slot words are
    // `AtomicU64`s (`UnsafeCell`), so writing them through a pointer derived from a
    // shared reference is allowed; readers in other processes may read them
    // concurrently, and these stores are relaxed atomic word stores in Rust's memory
    // model (module doc), made before the stamp that publishes them (W2) and after
    // W1. `src` is only read. The block touches no stack and clobbers only the
    // registers declared.
    unsafe {
        core::arch::asm!(
            "2:",
            "movdqu {a}, [{src}]",
            "movdqu {b}, [{src} + 16]",
            "movdqu {c}, [{src} + 32]",
            "movdqu {d}, [{src} + 48]",
            "movdqu [{dst}], {a}",
            "movdqu [{dst} + 16], {b}",
            "movdqu [{dst} + 32], {c}",
            "movdqu [{dst} + 48], {d}",
            "add {src}, 64",
            "add {dst}, 64",
            "sub {len}, 64",
            "jnz 2b",
            src = inout(reg) src.as_ptr() => _,
            dst = inout(reg) words.as_ptr().cast::<u8>().cast_mut() => _,
            len = inout(reg) len => _,
            a = out(xmm_reg) _,
            b = out(xmm_reg) _,
            c = out(xmm_reg) _,
            d = out(xmm_reg) _,
            options(nostack),
        );
    }
}

/// No bulk path here: [`bulk_len`] is 0.
#[cfg(not(all(target_arch = "x86_64", not(loom))))]
#[inline(always)]
pub(crate) fn load(_words: &[AtomicU64], _dst: &mut [u8]) {}

/// No bulk path here: [`bulk_len`] is 0.
#[cfg(not(all(target_arch = "x86_64", not(loom))))]
#[inline(always)]
pub(crate) fn store(_words: &[AtomicU64], _src: &[u8]) {}
