#!/usr/bin/env bash
# The loom suite: every model must pass; then, for each weakening of an ordering or
# fence the models depend on, the matching model must FAIL (loom reports a panic or a
# deadlock), which shows the models have teeth. See README.md and docs/loom.md.
#
#   loom-tests/run.sh                 # all models, then every weakening
#   loom-tests/run.sh r2 f_w          # all models, then only these weakenings
#   LOOM_MAX_PREEMPTIONS=3 loom-tests/run.sh
#
# Then the hardware tests of what loom cannot model (loom-tests/fence.sh: a normal
# build, each test must pass, and fail weakened): always without arguments, else when
# one of their weakenings (fenced_notify) is named.
#
# Weakened builds go through loom-tests/weaken-rustc (a RUSTC_WORKSPACE_WRAPPER) so
# that only shmchan and loom-tests are rebuilt per weakening; run one by hand with
#   RUSTFLAGS='--cfg loom --cfg shmchan_weaken="r2"' cargo test -p loom-tests --release \
#       --test loom_broadcast_overwrite -- --exact overwrite_four_records
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target/loom}"
export RUSTFLAGS="--cfg loom"
unset RUSTC_WORKSPACE_WRAPPER

# name | test file | model | what loom must report
weakenings=(
    "r2|loom_broadcast_overwrite|overwrite_four_records|torn record|out of order or overwritten|never written"
    "w1|loom_broadcast_overwrite|overwrite_four_records|torn record|out of order or overwritten|never written"
    "w2|loom_broadcast_overwrite|overwrite_four_records|torn record|out of order or overwritten|never written"
    "f_p|loom_wait|parked_receiver_always_wakes|deadlock"
    "f_w|loom_wait|parked_receiver_always_wakes|deadlock"
    "f_w|loom_wait|fenced_receiver_always_wakes|deadlock"
    "f_w|loom_wait|receiver_parks_twice|deadlock"
    "f_r|loom_broadcast_block|block_join_while_producer_runs|lossless receiver got Lagged"
    "j2|loom_broadcast_block|block_join_while_producer_runs|lossless receiver got Lagged"
    "f_j|loom_broadcast_block|block_join_while_producer_runs|deadlock"
    "f_a|loom_broadcast_block|block_two_receivers_no_loss|deadlock"
    "f_l|loom_broadcast_block|block_leave_while_producer_blocked|deadlock"
    "mp_w1|loom_channel|channel_overwrite_two_producers|torn"
    "mp_w2|loom_channel|channel_block_two_producers|lost, duplicated or reordered"
    "mp_claim|loom_channel|channel_overwrite_live_claim_not_skipped|skipped claim"
    "uc_r1|loom_unicast|unicast_route_two_workers|lost or duplicated"
    "mp_fp|loom_channel|channel_block_two_producers|deadlock"
    "uc_fs|loom_unicast|unicast_channel_two_producers_one_worker|deadlock"
    "uc_hold_copy|loom_unicast|unicast_rescue_copier_and_holder|overwritten under its holder|lost or duplicated"
    "uc_hold_copy|loom_unicast|unicast_rescue_two_holders|lost or duplicated"
    "uc_c3|loom_unicast|unicast_rescue_copier_and_holder|lost or duplicated"
    "mp_fc|loom_channel|channel_join_more_producers_than_capacity|lossless receiver got Lagged"
    "mp_fp|loom_channel|channel_busy_lap_older_writer|deadlock"
    "mp_present|loom_channel|channel_producer_dies_inside_leave_after_giving_its_entry_back|Disconnected before the record"
    "rb_fa|loom_batch|batch_recv_unblocks_a_gated_producer|deadlock"
    "f_r|loom_batch|batch_join_while_producer_sends_chunks|lossless receiver got Lagged"
    "async_recheck|loom_async|async_receiver_always_wakes|deadlock"
    "f_w|loom_async|async_receiver_always_wakes|deadlock"
    "f_w|loom_async|async_fenced_receiver_always_wakes|deadlock"
    "async_recheck|loom_async|async_fenced_receiver_always_wakes|deadlock"
    "gap_started|loom_gap_lap|lapped_over_a_gap_marker|missing since"
    "gap_started|loom_gap_lap|channel_lapped_over_a_gap_marker|records"
    "gap_fg|loom_gap_lap|lapped_over_a_gap_marker|deadlock"
)

start=$SECONDS
echo "=== loom models (LOOM_MAX_PREEMPTIONS=$LOOM_MAX_PREEMPTIONS): must pass"
cargo test -p loom-tests --release
echo "=== models passed ($((SECONDS - start))s)"

wrapdir="$CARGO_TARGET_DIR/weaken"
mkdir -p "$wrapdir"
failed=0
for entry in "${weakenings[@]}"; do
    IFS='|' read -r name file model expect <<<"$entry"
    if [ $# -gt 0 ] && ! printf '%s\n' "$@" | grep -qx "$name"; then
        continue
    fi
    t0=$SECONDS
    ln -sf "$root/loom-tests/weaken-rustc" "$wrapdir/$name"
    export RUSTC_WORKSPACE_WRAPPER="$wrapdir/$name"
    log="$wrapdir/$name.log"
    # A weakened build that does not compile proves nothing: fail loudly.
    if ! cargo test -p loom-tests --release --test "$file" --no-run >"$log" 2>&1; then
        cat "$log"
        echo "=== weaken $name: BUILD FAILED (see above)" >&2
        failed=1
        continue
    fi
    status=0
    cargo test -p loom-tests --release --test "$file" -- --exact "$model" >>"$log" 2>&1 || status=$?
    unset RUSTC_WORKSPACE_WRAPPER
    found="$(grep -E -m1 -o "$expect" "$log" || true)"
    if [ "$status" -ne 0 ] && [ -n "$found" ]; then
        echo "=== weaken $name: $model fails as it must (\"$found\", $((SECONDS - t0))s)"
    else
        tail -n 30 "$log"
        echo "=== weaken $name: $model did NOT fail as expected (exit $status; log $log)" >&2
        failed=1
    fi
done
if [ $# -eq 0 ] || printf '%s\n' "$@" | grep -qx "fenced_notify"; then
    echo "=== hardware tests (loom-tests/fence.sh)"
    "$root/loom-tests/fence.sh" || failed=1
fi
echo "=== loom suite done in $((SECONDS - start))s"
exit "$failed"
