//! Handlers that kill the process with a fatal signal, as a buggy handler library (or a C library
//! it calls) would: the bootstrap must answer the invocation before the process ends.
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use sdk::{Context, Diagnostic};

/// The event of [`segfault`].
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SegfaultEvent {
    pub segfault: bool,
    /// Sleep this long first (so another invocation can be in flight meanwhile).
    pub sleep_ms: u64,
    /// Fault on a thread of the handler's own instead of the calling one.
    pub thread: bool,
}

/// Writes through an invalid pointer when asked (`SIGSEGV`); else `{"segfault": false}`.
pub fn segfault(event: SegfaultEvent, _: Context) -> Result<Value, Diagnostic> {
    std::thread::sleep(Duration::from_millis(event.sleep_ms));
    if event.segfault {
        if event.thread {
            let _ = std::thread::spawn(write_to_an_invalid_address).join();
        }
        write_to_an_invalid_address();
    }
    Ok(serde_json::json!({ "segfault": false }))
}

/// Not null (a null pointer fails std's debug precondition check, which aborts instead), but
/// in the first page, which is never mapped.
pub fn write_to_an_invalid_address() {
    let address = std::ptr::without_provenance_mut::<u64>(8);
    // SAFETY: none: the write faults on purpose.
    unsafe { std::ptr::write_volatile(address, 1) };
}

/// The event of [`stack_overflow`].
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StackOverflowEvent {
    pub overflow: bool,
    /// Overflow a thread of the handler's own (std's 8 KiB alternate stack) instead.
    pub thread: bool,
}

/// Recurses without end when asked: std reports the overflow of the guard page and aborts.
pub fn stack_overflow(event: StackOverflowEvent, _: Context) -> Result<Value, Diagnostic> {
    if event.overflow {
        if event.thread {
            let _ = std::thread::spawn(|| recurse(0)).join();
        }
        recurse(0);
    }
    Ok(serde_json::json!({ "overflow": false }))
}

#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    // A frame of 4 KiB the optimiser cannot remove, so the recursion is neither a loop nor cheap.
    let frame = std::hint::black_box([depth as u8; 4096]);
    recurse(depth + 1) + u64::from(frame[0])
}

/// The event of [`fault`]: `{"signal": "SIGILL" | "SIGFPE" | "SIGBUS" | "SIGSEGV"}`.
#[derive(Debug, Deserialize)]
pub struct FaultEvent {
    pub signal: String,
}

/// Faults as asked: an undefined instruction (`SIGILL`, what `core::intrinsics::abort` does),
/// an integer division by zero in machine code (`SIGFPE`; arm64 does not trap on it, so the
/// signal is raised there), a read past the end of a mapped file (`SIGBUS`), an invalid write
/// (`SIGSEGV`). An unknown name is an error.
pub fn fault(event: FaultEvent, _: Context) -> Result<Value, Diagnostic> {
    match event.signal.as_str() {
        "SIGILL" => illegal_instruction(),
        "SIGFPE" => divide_by_zero(),
        "SIGBUS" => bus_error(),
        "SIGSEGV" => write_to_an_invalid_address(),
        other => return Err(Diagnostic::new("UnknownSignal", format!("no fault for {other:?}"))),
    }
    Ok(serde_json::json!({ "survived": event.signal }))
}

fn illegal_instruction() {
    // SAFETY: none: the instruction is undefined on purpose.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        std::arch::asm!("ud2");
    }
    // SAFETY: as above.
    #[cfg(target_arch = "aarch64")]
    unsafe {
        std::arch::asm!("udf #0");
    }
}

fn divide_by_zero() {
    let divisor = std::hint::black_box(0u64);
    // SAFETY: none: `div` by zero traps on purpose; rax and rdx are declared clobbered.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        std::arch::asm!("div {d}", d = in(reg) divisor, inout("rax") 1u64 => _, inout("rdx") 0u64 => _);
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = divisor;
        // SAFETY: raises a signal in this process.
        unsafe { libc::raise(libc::SIGFPE) };
    }
}

fn bus_error() {
    // An empty file mapped one page long: reading the page is past the end of the file, which
    // the kernel answers with SIGBUS. (No `memfd_create`: the packaged library needs glibc 2.26.)
    let path = std::env::temp_dir().join(format!("handlers-example-bus-error-{}", std::process::id()));
    // Readable: a mapping with PROT_READ needs it.
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path);
    let Ok(file) = opened else {
        return;
    };
    // SAFETY: maps a file we own, read-only, and reads its first byte: the fault is the point.
    unsafe {
        let page = libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ,
            libc::MAP_SHARED,
            std::os::fd::AsRawFd::as_raw_fd(&file),
            0,
        );
        // The mapping outlives the name.
        let _ = std::fs::remove_file(&path);
        if page != libc::MAP_FAILED {
            std::ptr::read_volatile(page.cast::<u8>());
        }
    }
}
