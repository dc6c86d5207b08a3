//! The default limits of a filesystem: tmpfs's rule
//! ([`FsConfig::for_memory`]) applied to the memory this process may use:
//! the host's (feature `host`), or inside a component, what its own
//! 32-bit memory can reach.

use fs_core::FsConfig;

/// A component's memory is a 32-bit address space. Its limits are tmpfs's
/// on that (2 GiB of file data, 524,288 inodes), so the files leave room
/// for everything else; a runtime that caps memory lower gets
/// `insufficient-memory` where the cap is hit, never a trap.
#[cfg(not(feature = "host"))]
pub fn default_config() -> FsConfig {
    FsConfig::for_memory(4 << 30)
}

/// Limits for a filesystem in this process: half of [`host_memory`] for
/// file data, one inode per 8 KiB of it.
#[cfg(feature = "host")]
pub fn default_config() -> FsConfig {
    FsConfig::for_memory(host_memory())
}

/// What is assumed where the memory cannot be read.
#[cfg(feature = "host")]
const FALLBACK: u64 = 8 << 30;

/// The machine's RAM, or the cgroup's memory limit if that is lower (a
/// container's tmpfs is charged to its cgroup, so the machine's figure
/// would let one guest get the container killed).
#[cfg(feature = "host")]
pub fn host_memory() -> u64 {
    let ram = machine_ram().unwrap_or(FALLBACK);
    cgroup_limit().map_or(ram, |limit| limit.min(ram))
}

#[cfg(all(feature = "host", target_os = "linux"))]
fn machine_ram() -> Option<u64> {
    let info = rustix::system::sysinfo();
    (info.totalram as u64).checked_mul(info.mem_unit.max(1) as u64)
}

#[cfg(all(feature = "host", not(target_os = "linux")))]
fn machine_ram() -> Option<u64> {
    None
}

/// cgroup v2's `memory.max` for this process's group (`max`: none).
#[cfg(feature = "host")]
fn cgroup_limit() -> Option<u64> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    // v2 is the line `0::/path`.
    let path = own.lines().find_map(|l| l.strip_prefix("0::"))?;
    let file = format!("/sys/fs/cgroup{}/memory.max", path.trim_end_matches('/'));
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

#[cfg(all(test, feature = "host", target_os = "linux"))]
mod tests {
    use super::*;

    /// The machine's figure is /proc/meminfo's MemTotal; the default
    /// never exceeds it, and the limits are tmpfs's.
    #[test]
    fn defaults_follow_this_hosts_memory() {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
        let kib: u64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        assert_eq!(machine_ram(), Some(kib * 1024));
        let mem = host_memory();
        assert!(mem <= kib * 1024 && mem > 0, "{mem} vs MemTotal {kib} kB");
        let c = default_config();
        assert_eq!((c.max_bytes, c.max_inodes), (mem / 2, mem / 8192));
    }
}
