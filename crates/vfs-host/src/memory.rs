//! The default limits of a filesystem on this host: tmpfs's rule
//! ([`FsConfig::for_memory`]) applied to the memory this process may use.

use fs_core::FsConfig;

/// What is assumed where the memory cannot be read.
const FALLBACK: u64 = 8 << 30;

/// The machine's RAM, or the cgroup's memory limit if that is lower (a
/// container's tmpfs is charged to its cgroup, so the machine's figure
/// would let one guest get the container killed).
pub fn host_memory() -> u64 {
    let ram = machine_ram().unwrap_or(FALLBACK);
    cgroup_limit().map_or(ram, |limit| limit.min(ram))
}

/// Limits for a filesystem in this process: half of [`host_memory`] for
/// file data, one inode per 8 KiB of it.
pub fn default_config() -> FsConfig {
    FsConfig::for_memory(host_memory())
}

#[cfg(target_os = "linux")]
fn machine_ram() -> Option<u64> {
    let info = rustix::system::sysinfo();
    (info.totalram as u64).checked_mul(info.mem_unit.max(1) as u64)
}

#[cfg(not(target_os = "linux"))]
fn machine_ram() -> Option<u64> {
    None
}

/// cgroup v2's `memory.max` for this process's group (`max`: none).
fn cgroup_limit() -> Option<u64> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    // v2 is the line `0::/path`.
    let path = own.lines().find_map(|l| l.strip_prefix("0::"))?;
    let file = format!("/sys/fs/cgroup{}/memory.max", path.trim_end_matches('/'));
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

#[cfg(test)]
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
