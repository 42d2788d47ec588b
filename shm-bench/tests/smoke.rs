//! Runs `shm-bench smoke`: every built-in transport through every benchmark with a few
//! thousand records, each record checked byte for byte by the receiving process. It
//! asserts data correctness and clean process handling only, never timing.

use std::process::Command;

#[test]
fn smoke_moves_every_record_intact() {
    let out = Command::new(env!("CARGO_BIN_EXE_shm-bench"))
        .arg("smoke")
        .output()
        .expect("run shm-bench smoke");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "shm-bench smoke failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(
        stdout.contains(" 0 failed"),
        "unexpected summary:\n{stdout}"
    );
}

#[test]
fn unknown_transport_is_a_clean_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_shm-bench"))
        .args(["latency", "--transports", "carrier-pigeon", "--runs", "1"])
        .output()
        .expect("run shm-bench");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown transport"), "stderr: {stderr}");
}

#[test]
fn fanout_refuses_unicast_transports() {
    let out = Command::new(env!("CARGO_BIN_EXE_shm-bench"))
        .args([
            "fanout",
            "--transports",
            "shmchan-spin,shmchan-channel-unicast-spin",
            "--runs",
            "1",
        ])
        .output()
        .expect("run shm-bench");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("shmchan-channel-unicast-spin is unicast"),
        "stderr: {stderr}"
    );
    // Refused before anything was measured.
    assert!(String::from_utf8_lossy(&out.stdout).is_empty());
}

#[test]
fn latency_and_fanout_refuse_batches() {
    for bench in ["latency", "fanout"] {
        let out = Command::new(env!("CARGO_BIN_EXE_shm-bench"))
            .args([
                bench,
                "--transports",
                "shmchan-spin-lossless,shmchan-spin-lossless-batch16",
                "--runs",
                "1",
            ])
            .output()
            .expect("run shm-bench");
        assert!(!out.status.success(), "{bench}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("shmchan-spin-lossless-batch16 moves records in batches"),
            "{bench} stderr: {stderr}"
        );
        // Refused before anything was measured.
        assert!(String::from_utf8_lossy(&out.stdout).is_empty(), "{bench}");
    }
}
