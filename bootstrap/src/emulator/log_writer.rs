//! The emulator's own log lines: each written whole, prefixed `[lambda-emulator]`, in one locked
//! write to stderr, so they never land inside a line the runtime is writing.
use std::io::Write;

use tracing_subscriber::fmt::MakeWriter;

pub const PREFIX: &str = "[lambda-emulator] ";

/// A `MakeWriter` for tracing-subscriber's fmt layer.
#[derive(Clone, Copy, Debug, Default)]
pub struct PrefixedStderr;

/// Collects one formatted event and writes it, prefixed, when dropped.
pub struct PrefixedLine {
    buffer: Vec<u8>,
}

impl Write for PrefixedLine {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for PrefixedLine {
    fn drop(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        let mut line = Vec::with_capacity(PREFIX.len() + self.buffer.len() + 1);
        line.extend_from_slice(PREFIX.as_bytes());
        line.extend_from_slice(&self.buffer);
        if !line.ends_with(b"\n") {
            line.push(b'\n');
        }
        // Nowhere left to report a failed write to stderr.
        let _ = std::io::stderr().lock().write_all(&line);
    }
}

impl<'a> MakeWriter<'a> for PrefixedStderr {
    type Writer = PrefixedLine;

    fn make_writer(&'a self) -> Self::Writer {
        PrefixedLine { buffer: Vec::new() }
    }
}
