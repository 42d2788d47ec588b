#!/usr/bin/env bash
# The hardware half of the proof of the futex protocol (`src/wait.rs`): what loom cannot
# model. Under loom the light fence is already `SeqCst`, so deleting the notifier's fence
# of fenced mode (`F_n'`) passes every model; on hardware it loses wake-ups. Each test
# below must pass as built and FAIL in the build weakened at its switch, like the loom
# models in run.sh (which calls this script). A normal build (no `--cfg loom`), in the
# default target directory, so the first run reuses the build of `cargo test --release`.
#
#   loom-tests/fence.sh                      # every test, then every weakening
#   SHMCHAN_STRESS_SECS=10 loom-tests/fence.sh
#
# Weakened builds go through loom-tests/weaken-rustc (see run.sh): only shmchan is
# rebuilt, with `--cfg shmchan_weaken="NAME"`.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

export CARGO_TARGET_DIR="$root/target"
unset RUSTFLAGS RUSTC_WORKSPACE_WRAPPER

# name | test (an ignored unit test of the shmchan library) | what the weakened run must report
weakenings=(
    "fenced_notify|wait::tests::stress::fenced_notify_never_loses_a_wake_up|lost a wake-up"
)

run_test() {
    cargo test --release -p shmchan --lib -- --ignored --exact "$1" --nocapture
}

# The stress tests pin two threads to CPUs 0 and 1: on one CPU the race they provoke
# needs a preemption in a window of nanoseconds, and a weakened build would pass.
if [ "$(nproc)" -lt 2 ]; then
    echo "=== hardware tests SKIPPED: they need 2 CPUs, this machine has $(nproc)" >&2
    exit 0
fi

failed=0
for entry in "${weakenings[@]}"; do
    IFS='|' read -r name test expect <<<"$entry"
    t0=$SECONDS
    echo "=== hardware test $test: must pass"
    if ! run_test "$test"; then
        echo "=== hardware test $test FAILED as built" >&2
        failed=1
        continue
    fi
    wrapdir="$CARGO_TARGET_DIR/weaken"
    mkdir -p "$wrapdir"
    ln -sf "$root/loom-tests/weaken-rustc" "$wrapdir/$name"
    log="$wrapdir/$name.hw.log"
    status=0
    RUSTC_WORKSPACE_WRAPPER="$wrapdir/$name" run_test "$test" >"$log" 2>&1 || status=$?
    found="$(grep -E -m1 -o "$expect" "$log" || true)"
    grep -E -m1 "stress:|note:" "$log" || true
    if [ "$status" -ne 0 ] && [ -n "$found" ]; then
        echo "=== weaken $name: $test fails as it must (\"$found\", $((SECONDS - t0))s)"
    else
        tail -n 30 "$log"
        echo "=== weaken $name: $test did NOT fail as expected (exit $status; log $log)" >&2
        failed=1
    fi
done
exit "$failed"
