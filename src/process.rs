//! Process identity and liveness: who holds a claim in the segment, and is it still alive?
//!
//! A claim (the sender slot, a receiver-table entry) stores an *owner word*: the pid in
//! the low 32 bits and the low 32 bits of the process start time (clock ticks since boot,
//! field 22 of `/proc/PID/stat`) in the high 32 bits. Comparing the start time means a
//! pid the kernel has reused for a new process is not mistaken for the old owner. The
//! word is never zero (pids are positive), so zero means "free".

use std::io;
use std::sync::OnceLock;

/// The owner word of the calling process (computed once).
pub(crate) fn current_owner() -> u64 {
    static OWNER: OnceLock<u64> = OnceLock::new();
    *OWNER.get_or_init(|| {
        let pid = std::process::id();
        // If /proc is unavailable we fall back to the pid alone (start time 0): liveness
        // then degrades to `kill(pid, 0)`, which still detects dead processes.
        let start = read_stat(pid).map(|s| s.start_ticks).unwrap_or(0);
        pack(pid, start)
    })
}

/// Packs a pid and a start time into an owner word.
pub(crate) fn pack(pid: u32, start_ticks: u64) -> u64 {
    (start_ticks & 0xffff_ffff) << 32 | u64::from(pid)
}

/// The pid of an owner word.
pub(crate) fn owner_pid(owner: u64) -> u32 {
    owner as u32
}

/// What `/proc/PID/stat` tells about a process.
struct Stat {
    /// The one-letter state (`R`, `S`, `Z`, ...).
    state: u8,
    /// Start time in clock ticks after boot.
    start_ticks: u64,
}

fn read_stat(pid: u32) -> io::Result<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&text).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad stat"))
}

/// Parses the fields after the command name, which may itself contain spaces and
/// parentheses: everything after the *last* `)` is space separated.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = *fields.next()?.as_bytes().first()?;
    // `state` is field 3; `starttime` is field 22, i.e. 19 fields further on.
    let start_ticks = fields.nth(18)?.parse().ok()?;
    Some(Stat { state, start_ticks })
}

/// Is the process that wrote `owner` still alive?
///
/// Dead means: no such pid, a zombie (killed but not yet reaped, which must not hold a
/// claim), or a pid whose start time differs from the recorded one (reused). An
/// unparseable owner word (zero pid, or a pid beyond `i32`) counts as dead, so a corrupt
/// word cannot pin a claim for ever.
pub(crate) fn is_alive(owner: u64) -> bool {
    let pid = owner_pid(owner);
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    if raw <= 0 {
        return false;
    }
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None) {
        Ok(()) | Err(nix::errno::Errno::EPERM) => {}
        Err(_) => return false,
    }
    match read_stat(pid) {
        Ok(stat) => {
            let recorded = owner >> 32;
            let zombie = matches!(stat.state, b'Z' | b'X' | b'x');
            // A recorded start of 0 means the owner could not read /proc; trust the pid.
            !zombie && (recorded == 0 || recorded == stat.start_ticks & 0xffff_ffff)
        }
        // Gone between the two checks.
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        // /proc hidden from us (hidepid): the signal check above is all we have.
        Err(_) => true,
    }
}

/// The liveness oracle the ring algorithms consult before evicting a claim. Production
/// uses [`ProcLiveness`]; the loom models supply their own.
pub trait Liveness {
    /// Whether the process that stored `owner` is alive.
    fn is_alive(&self, owner: u64) -> bool;
}

/// Liveness from `kill(pid, 0)` and `/proc/PID/stat`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcLiveness;

impl Liveness for ProcLiveness {
    fn is_alive(&self, owner: u64) -> bool {
        is_alive(owner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_parentheses_in_the_name() {
        let line = "1234 (a) b (c)) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 987654 20";
        let stat = parse_stat(line).expect("parses");
        assert_eq!(stat.state, b'S');
        assert_eq!(stat.start_ticks, 987654);
    }

    #[test]
    fn self_is_alive_and_a_reused_pid_is_not() {
        let me = current_owner();
        assert!(is_alive(me));
        assert_eq!(owner_pid(me), std::process::id());
        // Same pid, a different start time: a different process.
        let other = pack(std::process::id(), (me >> 32) + 1);
        assert!(!is_alive(other));
        assert!(!is_alive(0));
        assert!(!is_alive(u64::from(u32::MAX)));
    }

    #[test]
    fn zombie_is_dead() {
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = child.id();
        // Wait until it has exited but do not reap it: it is a zombie.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while read_stat(pid).map(|s| s.state != b'Z').unwrap_or(false) {
            assert!(std::time::Instant::now() < deadline, "child did not exit");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(!is_alive(pack(pid, 0)));
        child.wait().expect("reap");
    }
}
