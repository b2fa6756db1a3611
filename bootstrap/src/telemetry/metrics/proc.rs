//! Readers of `/proc` and `statfs` for the enhanced metrics Datadog's Extension computes the
//! same way (`/proc/stat`, `/proc/uptime`, `/proc/net/dev`, `/proc/<pid>/{fd,task,limits,status}`,
//! `statfs("/tmp")`). Parsers take text so they are tested on fixed input; readers take a root
//! directory so tests can point them at a fake `/proc`.
use std::fs;
use std::path::{Path, PathBuf};

/// Clock ticks per second of `/proc/stat` (`sysconf(_SC_CLK_TCK)`, 100 on Lambda).
pub fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions; a failure returns -1, handled below.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// Times from `/proc/stat`, in clock ticks.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CpuStat {
    pub user: f64,
    pub system: f64,
    pub idle: f64,
    /// Idle ticks of each `cpuN` line.
    pub per_core_idle: Vec<f64>,
}

/// Parses `/proc/stat`: the aggregate `cpu` line (user+nice, system+irq+softirq, idle) and
/// one idle count per `cpuN` line.
pub fn parse_cpu_stat(text: &str) -> Option<CpuStat> {
    let mut stat = CpuStat::default();
    let mut found = false;
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some(label) = fields.next() else { continue };
        if !label.starts_with("cpu") {
            continue;
        }
        let values: Vec<f64> = fields.filter_map(|f| f.parse().ok()).collect();
        if values.len() < 4 {
            continue;
        }
        if label == "cpu" {
            let at = |i: usize| values.get(i).copied().unwrap_or(0.0);
            stat.user = at(0) + at(1);
            stat.system = at(2) + at(5) + at(6);
            stat.idle = at(3);
            found = true;
        } else {
            stat.per_core_idle.push(values[3]);
        }
    }
    found.then_some(stat)
}

/// Seconds of `/proc/uptime` (its first field).
pub fn parse_uptime(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

/// Received and transmitted bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct NetworkBytes {
    pub rx: u64,
    pub tx: u64,
}

/// The interfaces Lambda gives a function (as Datadog's Extension reads them); on another
/// machine every interface but loopback counts.
const LAMBDA_INTERFACES: &[&str] = &["vinternal_1", "vint_runtime", "Ceth1"];

/// Parses `/proc/net/dev`, summing Lambda's interfaces, or every non-loopback one when none
/// of Lambda's is present.
pub fn parse_net_dev(text: &str) -> NetworkBytes {
    let mut lambda = NetworkBytes::default();
    let mut others = NetworkBytes::default();
    let mut saw_lambda = false;
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else { continue };
        let name = name.trim();
        let values: Vec<u64> = rest.split_whitespace().filter_map(|f| f.parse().ok()).collect();
        if values.len() < 9 {
            continue;
        }
        let (rx, tx) = (values[0], values[8]);
        if LAMBDA_INTERFACES.contains(&name) {
            saw_lambda = true;
            lambda.rx += rx;
            lambda.tx += tx;
        } else if name != "lo" {
            others.rx += rx;
            others.tx += tx;
        }
    }
    if saw_lambda {
        lambda
    } else {
        others
    }
}

/// `Max open files` and `Max processes` soft limits from `/proc/<pid>/limits` (1024 when
/// unreadable or unlimited, the Extension's default).
pub fn parse_limits(text: &str) -> (u64, u64) {
    let soft = |label: &str| {
        text.lines()
            .find(|l| l.starts_with(label))
            .and_then(|l| l[label.len()..].split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(1024)
    };
    (soft("Max open files"), soft("Max processes"))
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in bytes.
pub fn parse_status_kb(text: &str, field: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?;
    let kb: u64 = line[field.len() + 1..].split_whitespace().next()?.parse().ok()?;
    Some(kb * 1024)
}

/// Reads the files under one `/proc` root (`/proc` in production).
#[derive(Clone, Debug)]
pub struct ProcReader {
    root: PathBuf,
    tmp: PathBuf,
}

impl Default for ProcReader {
    fn default() -> Self {
        Self::new("/proc", "/tmp")
    }
}

impl ProcReader {
    pub fn new(root: impl Into<PathBuf>, tmp: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            tmp: tmp.into(),
        }
    }

    /// A kept-open reader of a file under the root (`stat`, `uptime`, `net/dev`).
    pub fn kept(&self, relative: &str) -> KeptFile {
        KeptFile::new(self.root.join(relative))
    }

    fn read(&self, relative: &str) -> Option<String> {
        fs::read_to_string(self.root.join(relative)).ok()
    }

    pub fn limits(&self, pid: u32) -> (u64, u64) {
        self.read(&format!("{pid}/limits")).map_or((1024, 1024), |t| parse_limits(&t))
    }

    /// `pid` and all its descendants, from `/proc/<pid>/task/<tid>/children`.
    pub fn process_tree(&self, pid: u32) -> Vec<u32> {
        let mut tree = vec![pid];
        let mut next = 0;
        while next < tree.len() && tree.len() < 4096 {
            let current = tree[next];
            next += 1;
            let Ok(tasks) = fs::read_dir(self.root.join(format!("{current}/task"))) else {
                continue;
            };
            for task in tasks.flatten() {
                if let Ok(children) = fs::read_to_string(task.path().join("children")) {
                    tree.extend(children.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
                }
            }
        }
        tree
    }

    /// `/tmp` size and bytes used, from `statfs`.
    pub fn tmp_usage(&self) -> Option<(u64, u64)> {
        statfs_usage(&self.tmp)
    }
}

/// A `/proc` file kept open and read again from offset 0 each time: the kernel regenerates
/// its text on every read, and not reopening it saves two of three syscalls per read.
#[derive(Debug)]
pub struct KeptFile {
    path: PathBuf,
    file: Option<fs::File>,
}

impl KeptFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            file: None,
        }
    }

    /// The whole file into `text` (cleared first); `false` when it cannot be read (the process
    /// is gone), after which the next read opens it again.
    pub fn read_into(&mut self, text: &mut String) -> bool {
        use std::os::unix::fs::FileExt;
        text.clear();
        if self.file.is_none() {
            self.file = fs::File::open(&self.path).ok();
        }
        let Some(file) = &self.file else { return false };
        let mut bytes = std::mem::take(text).into_bytes();
        bytes.resize(bytes.capacity().max(4096), 0);
        let mut filled = 0;
        let ok = loop {
            if filled == bytes.len() {
                bytes.resize(bytes.len() * 2, 0);
            }
            match file.read_at(&mut bytes[filled..], filled as u64) {
                Ok(0) => break true,
                // A `/proc` file hands out whole lines while they fit: a read that leaves more
                // than half the buffer empty had everything, and skipping the read that would
                // return 0 halves the syscalls.
                Ok(n) if filled + n < bytes.len() / 2 => {
                    filled += n;
                    break true;
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break false,
            }
        };
        bytes.truncate(filled);
        *text = String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        if !ok {
            self.file = None;
        }
        ok
    }
}

/// A `/proc` directory kept open and listed again from its start: counts entries with one
/// `getdents64` per 4 KB of names, without reopening it.
#[derive(Debug)]
pub struct KeptDir {
    path: PathBuf,
    fd: Option<std::os::fd::OwnedFd>,
}

impl KeptDir {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            fd: None,
        }
    }

    /// Entries other than `.` and `..`; `None` when the directory cannot be read.
    pub fn count_entries(&mut self) -> Option<u64> {
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        use std::os::unix::ffi::OsStrExt;
        if self.fd.is_none() {
            let c_path = std::ffi::CString::new(self.path.as_os_str().as_bytes()).ok()?;
            // SAFETY: a valid NUL-terminated path; the returned descriptor is owned below.
            let raw = unsafe { libc::open(c_path.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) };
            if raw < 0 {
                return None;
            }
            // SAFETY: `raw` was just opened and nothing else owns it.
            self.fd = Some(unsafe { OwnedFd::from_raw_fd(raw) });
        }
        let fd = self.fd.as_ref()?.as_raw_fd();
        // SAFETY: lseek on a descriptor we own.
        if unsafe { libc::lseek(fd, 0, libc::SEEK_SET) } < 0 {
            self.fd = None;
            return None;
        }
        let mut buffer = [0u8; 4096];
        let mut count = 0u64;
        loop {
            // SAFETY: getdents64 writes at most `buffer.len()` bytes into `buffer`.
            let n = unsafe { libc::syscall(libc::SYS_getdents64, fd, buffer.as_mut_ptr(), buffer.len()) };
            if n < 0 {
                self.fd = None;
                return None;
            }
            if n == 0 {
                return Some(count);
            }
            let mut offset = 0usize;
            while offset + 19 < n as usize {
                // struct linux_dirent64: u64 ino, i64 off, u16 reclen, u8 type, then the name.
                let reclen = u16::from_ne_bytes([buffer[offset + 16], buffer[offset + 17]]) as usize;
                let name = &buffer[offset + 19..];
                let is_dot = name.starts_with(b".\0") || name.starts_with(b"..\0");
                if !is_dot {
                    count += 1;
                }
                if reclen == 0 {
                    break;
                }
                offset += reclen;
            }
        }
    }
}

/// The soft limits, kept-open files and tree of one sampled process.
#[derive(Debug)]
pub struct ProcessFiles {
    status: KeptFile,
    fds: KeptDir,
}

impl ProcessFiles {
    pub fn new(reader: &ProcReader, pid: u32) -> Self {
        Self {
            status: KeptFile::new(reader.root.join(format!("{pid}/status"))),
            fds: KeptDir::new(reader.root.join(format!("{pid}/fd"))),
        }
    }

    /// Open fds, threads (`Threads:`), resident bytes (`VmRSS`) and peak (`VmHWM`); `None` once
    /// the process is gone.
    pub fn read(&mut self, text: &mut String) -> Option<ProcessUsage> {
        if !self.status.read_into(text) {
            return None;
        }
        Some(ProcessUsage {
            fds: self.fds.count_entries().unwrap_or(0),
            threads: parse_status_count(text, "Threads").unwrap_or(0),
            rss: parse_status_kb(text, "VmRSS").unwrap_or(0),
            hwm: parse_status_kb(text, "VmHWM").unwrap_or(0),
        })
    }
}

/// One process's share of the fd, thread and memory metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessUsage {
    pub fds: u64,
    pub threads: u64,
    pub rss: u64,
    pub hwm: u64,
}

/// A count field of `/proc/<pid>/status` (`Threads`).
pub fn parse_status_count(text: &str, field: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?;
    line[field.len() + 1..].split_whitespace().next()?.parse().ok()
}

fn statfs_usage(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: `c_path` is a valid NUL-terminated string and `stat` a properly sized out-param.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statfs(c_path.as_ptr(), &raw mut stat) };
    if rc != 0 {
        return None;
    }
    let bsize = stat.f_bsize as u64;
    let max = bsize * stat.f_blocks as u64;
    let used = bsize * (stat.f_blocks as u64).saturating_sub(stat.f_bavail as u64);
    Some((max, used))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  100 5 50 1000 3 2 1 0 0 0\ncpu0 60 2 30 480 1 1 1 0 0 0\ncpu1 40 3 20 520 2 1 0 0 0 0\nintr 1 2\n";

    #[test]
    fn cpu_stat_aggregate_and_cores() {
        let s = parse_cpu_stat(STAT).unwrap();
        assert_eq!(s.user, 105.0);
        assert_eq!(s.system, 53.0);
        assert_eq!(s.idle, 1000.0);
        assert_eq!(s.per_core_idle, [480.0, 520.0]);
        assert!(parse_cpu_stat("garbage").is_none());
    }

    #[test]
    fn net_dev_prefers_lambda_interfaces() {
        let text = "Inter-|   Receive |  Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes\n    lo: 999 1 0 0 0 0 0 0 999 1 0 0 0 0 0 0\n  eth0: 100 1 0 0 0 0 0 0 200 1 0 0 0 0 0 0\n";
        assert_eq!(parse_net_dev(text), NetworkBytes { rx: 100, tx: 200 });
        let lambda = format!("{text}vinternal_1: 10 1 0 0 0 0 0 0 20 1 0 0 0 0 0 0\n");
        assert_eq!(parse_net_dev(&lambda), NetworkBytes { rx: 10, tx: 20 });
    }

    #[test]
    fn limits_and_status() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax processes             1024                 1024                 processes\nMax open files            65535                65535                files\n";
        assert_eq!(parse_limits(limits), (65535, 1024));
        assert_eq!(parse_limits(""), (1024, 1024));
        let status = "Name:\tx\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\n";
        assert_eq!(parse_status_kb(status, "VmRSS"), Some(1024 * 1024));
        assert_eq!(parse_status_kb(status, "VmHWM"), Some(2048 * 1024));
        assert_eq!(parse_uptime("123.45 678.9\n"), Some(123.45));
    }

    #[test]
    fn kept_files_and_dirs_read_the_same_as_a_fresh_open() {
        let reader = ProcReader::default();
        let me = std::process::id();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "").unwrap();
        std::fs::write(dir.path().join("b"), "").unwrap();
        let mut kept = KeptDir::new(dir.path());
        assert_eq!(kept.count_entries(), Some(2));
        std::fs::write(dir.path().join("c"), "").unwrap();
        assert_eq!(kept.count_entries(), Some(3), "listed again from its start, it sees the new entry");
        let mut text = String::new();
        let usage = ProcessFiles::new(&reader, me).read(&mut text).unwrap();
        assert!(
            usage.fds >= 3 && usage.threads >= 1 && usage.rss > 0 && usage.hwm >= usage.rss,
            "{usage:?}"
        );
        let mut stat = reader.kept("stat");
        assert!(stat.read_into(&mut text) && parse_cpu_stat(&text).is_some());
        assert!(stat.read_into(&mut text) && parse_cpu_stat(&text).is_some());
        let mut gone = KeptFile::new("/proc/0/status");
        assert!(!gone.read_into(&mut text));
        assert!(ProcessFiles::new(&reader, u32::MAX).read(&mut text).is_none());
        assert_eq!(parse_status_count("Threads:\t7\n", "Threads"), Some(7));
    }

    #[test]
    fn real_proc_of_this_process() {
        let reader = ProcReader::default();
        let me = std::process::id();
        let tree = reader.process_tree(me);
        assert_eq!(tree[0], me);
        let mut text = String::new();
        let ProcessUsage { fds, threads, rss, hwm } = ProcessFiles::new(&reader, me).read(&mut text).unwrap();
        assert!(fds >= 3 && threads >= 1, "fds {fds} threads {threads}");
        assert!(rss > 0 && hwm >= rss);
        let (max, used) = reader.tmp_usage().unwrap();
        assert!(max >= used && max > 0);
        assert!(reader.kept("stat").read_into(&mut text));
        assert!(!parse_cpu_stat(&text).unwrap().per_core_idle.is_empty());
    }
}
