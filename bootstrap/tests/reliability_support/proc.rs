//! What `/proc` says about a process: alive, open descriptors, threads, memory.

/// One reading of a process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcSample {
    pub fds: usize,
    pub threads: usize,
    pub rss_kb: u64,
    /// Peak RSS over the process's life (VmHWM).
    pub hwm_kb: u64,
}

pub fn alive(pid: u32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks the process exists.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

/// `None` once the process is gone.
pub fn sample(pid: u32) -> Option<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    Some(ProcSample {
        fds,
        threads: field("Threads:") as usize,
        rss_kb: field("VmRSS:"),
        hwm_kb: field("VmHWM:"),
    })
}

/// The fewest descriptors and threads over a few readings 20 ms apart: a descriptor opened for
/// a moment by a flush in progress (a `/proc` read, a connection) is not growth.
pub fn settled_sample(pid: u32) -> ProcSample {
    let mut best: Option<ProcSample> = None;
    for _ in 0..10 {
        let now = sample(pid).expect("the process is alive");
        best = Some(match best {
            None => now,
            Some(b) => ProcSample {
                fds: b.fds.min(now.fds),
                threads: b.threads.min(now.threads),
                rss_kb: now.rss_kb,
                hwm_kb: now.hwm_kb,
            },
        });
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    best.unwrap()
}

/// Least-squares slope of `(x, y)` points, in y per unit of x.
pub fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let cov: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let var: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    if var == 0.0 {
        0.0
    } else {
        cov / var
    }
}

/// The names of the process's threads (`/proc/<pid>/task/*/comm`), sorted.
pub fn thread_names(pid: u32) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .collect();
    names.sort();
    names
}

/// What each open descriptor of the process is: a path, a pipe, or for a socket its TCP/UDP
/// addresses (looked up by inode in `/proc/<pid>/net/{tcp,udp}`), sorted.
pub fn fd_targets(pid: u32) -> Vec<String> {
    let mut sockets = std::collections::HashMap::new();
    for table in ["tcp", "udp", "tcp6", "udp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() > 9 {
                let port = |address: &str| {
                    let hex = address.rsplit(':').next().unwrap_or_default();
                    u16::from_str_radix(hex, 16).unwrap_or(0)
                };
                let described = format!("{table} :{} -> :{} st{}", port(fields[1]), port(fields[2]), fields[3]);
                sockets.insert(fields[9].to_owned(), described);
            }
        }
    }
    let mut targets: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .map(|target| {
            let target = target.display().to_string();
            let inode = target.strip_prefix("socket:[").and_then(|rest| rest.strip_suffix(']'));
            match inode.and_then(|inode| sockets.get(inode)) {
                Some(described) => described.clone(),
                None => target,
            }
        })
        .collect();
    targets.sort();
    targets
}
