//! Resident memory of a runtime and everything it started: the runtime leads its own process
//! group (the emulator starts it so), so an exec-mode child is counted with its bootstrap.
use std::fs;
use std::io;

/// Memory of one process group, summed over its processes (from `/proc/<pid>/status`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct GroupMemory {
    pub processes: usize,
    /// Sum of `VmRSS`: resident now.
    pub rss_kb: u64,
    /// Sum of `VmHWM`: each process's peak. An upper bound of the group's peak, since the
    /// processes need not peak at the same moment.
    pub peak_kb: u64,
}

/// Reads the memory of every process whose process group is `pgid`.
pub fn process_group(group: u32) -> io::Result<GroupMemory> {
    let mut total = GroupMemory::default();
    for entry in fs::read_dir("/proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        // A process may exit between the listing and the read: skip it.
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if process_group_of(&stat) != Some(group) {
            continue;
        }
        let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        total.processes += 1;
        total.rss_kb += status_kb(&status, "VmRSS:").unwrap_or(0);
        total.peak_kb += status_kb(&status, "VmHWM:").unwrap_or(0);
    }
    Ok(total)
}

/// The `pgrp` field of `/proc/<pid>/stat`: the third field after the parenthesised command name
/// (which may itself contain spaces and parentheses, hence the last `)`).
fn process_group_of(stat: &str) -> Option<u32> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(2)?.parse().ok()
}

/// A `Name:   1234 kB` line of `/proc/<pid>/status`.
fn status_kb(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_survive_odd_command_names() {
        let stat = "4242 (my (odd) proc) S 1 4200 4200 0 -1 4194560 ...";
        assert_eq!(process_group_of(stat), Some(4200));
        assert_eq!(process_group_of("garbage"), None);
    }

    #[test]
    fn status_lines_give_kilobytes() {
        let status = "Name:\tbootstrap\nVmHWM:\t    5120 kB\nVmRSS:\t    4096 kB\n";
        assert_eq!(status_kb(status, "VmHWM:"), Some(5120));
        assert_eq!(status_kb(status, "VmRSS:"), Some(4096));
        assert_eq!(status_kb(status, "VmSwap:"), None);
    }

    #[test]
    fn a_child_started_in_its_own_group_is_found_with_its_memory() {
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("sleep").arg("30").process_group(0).spawn().unwrap();
        let memory = process_group(child.id()).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(memory.processes, 1);
        assert!(memory.rss_kb > 0 && memory.peak_kb >= memory.rss_kb, "{memory:?}");
    }
}
