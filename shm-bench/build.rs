//! Records the versions of the crates under comparison (from the workspace lock file)
//! so that the JSON report can name them.

fn main() {
    let lock = std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
        .join("..")
        .join("Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    let text = std::fs::read_to_string(&lock).unwrap_or_default();
    let wanted = [
        "shmchan",
        "iceoryx2",
        "ringfire",
        "hdrhistogram",
        "plotters",
        "clap",
    ];
    let mut found = Vec::new();
    let mut name = "";
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("name = ") {
            name = n.trim_matches('"');
        } else if let Some(v) = line.strip_prefix("version = ") {
            if wanted.contains(&name) {
                found.push(format!("{name}={}", v.trim_matches('"')));
            }
        }
    }
    println!("cargo:rustc-env=SHM_BENCH_VERSIONS={}", found.join(";"));
}
