//! The child's stdout and stderr, copied to ours line by line.
//!
//! Lambda sends the runtime's stdout and stderr to CloudWatch (and so to Datadog's forwarder)
//! line by line, so we only ever write whole lines, and one stream's line never lands in the
//! middle of the other's: both pumps write under one lock. Bytes are copied untouched (no UTF-8
//! decoding); with no [`LineRewriter`] set, the complete lines of each read go out in a single
//! write, without looking at them one by one.
//!
//! Each pump is a plain thread that waits for the pipe with poll(2): the output path then never
//! waits on the async runtime that serves invocations, and a slow stdout never stalls an
//! invocation. The copy step (read what the pipe holds, write the lines) runs under a lock, so
//! an [`OutputWatch`] can also run it on demand and see every line written before a given
//! moment (see `output_watch.rs`).
use std::borrow::Cow;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::oneshot;

use super::output_watch::{Drainable, OutputWatch};

/// A line longer than this (no newline yet) is written out in pieces rather than held in
/// memory without bound; CloudWatch splits lines far shorter than this anyway.
const MAX_HELD_LINE: usize = 8 * 1024 * 1024;
const READ_CHUNK: usize = 64 * 1024;

/// Which of the child's streams a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// Rewrites the child's output lines, e.g. to add trace ids for log correlation.
pub trait LineRewriter: Send + Sync + 'static {
    /// `line` is one line without its trailing newline; return it borrowed to keep it as is.
    fn rewrite<'a>(&self, stream: OutputStream, line: &'a [u8]) -> Cow<'a, [u8]>;
}

/// Where the child's lines go: the bootstrap's own stdout and stderr in production.
pub struct Destinations {
    pub stdout: Box<dyn Write + Send>,
    pub stderr: Box<dyn Write + Send>,
}

impl Destinations {
    /// The bootstrap's stdout and stderr.
    pub fn process() -> Self {
        Self {
            stdout: Box::new(io::stdout()),
            stderr: Box::new(io::stderr()),
        }
    }
}

/// How the child's output is copied; cheap to clone (shared between pumps and restarts).
#[derive(Clone)]
pub struct OutputConfig {
    destinations: Arc<Mutex<Destinations>>,
    rewriter: Option<Arc<dyn LineRewriter>>,
    /// Variables the child is started with besides the bootstrap's own (e.g. where its
    /// tracer finds the bootstrap's trace agent).
    child_env: Arc<Vec<(String, String)>>,
    /// Looks for lines of interest (out-of-memory messages) in what is copied.
    watch: Option<Arc<OutputWatch>>,
}

impl Default for OutputConfig {
    fn default() -> Self {
        Self::new(Destinations::process())
    }
}

impl OutputConfig {
    pub fn new(destinations: Destinations) -> Self {
        Self {
            destinations: Arc::new(Mutex::new(destinations)),
            rewriter: None,
            child_env: Arc::default(),
            watch: None,
        }
    }

    /// Shows every copied line to `watch` (the bulk copy stays one write per read).
    #[must_use]
    pub fn with_watch(mut self, watch: Arc<OutputWatch>) -> Self {
        self.watch = Some(watch);
        self
    }

    pub fn watch(&self) -> Option<&Arc<OutputWatch>> {
        self.watch.as_ref()
    }

    /// Starts the child with `env` added to the bootstrap's environment.
    #[must_use]
    pub fn with_child_env(mut self, env: Vec<(String, String)>) -> Self {
        self.child_env = Arc::new(env);
        self
    }

    pub fn child_env(&self) -> &[(String, String)] {
        &self.child_env
    }

    /// Passes every line through `rewriter` before it is written.
    #[must_use]
    pub fn with_rewriter(mut self, rewriter: Arc<dyn LineRewriter>) -> Self {
        self.rewriter = Some(rewriter);
        self
    }

    fn write(&self, stream: OutputStream, bytes: &[u8]) {
        let mut destinations = self.destinations.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let target = match stream {
            OutputStream::Stdout => &mut destinations.stdout,
            OutputStream::Stderr => &mut destinations.stderr,
        };
        // Our own stdout failing (closed by the platform) must not stop the pump: the child
        // would block on a full pipe. The lines are dropped instead.
        let _ = target.write_all(bytes).and_then(|()| target.flush());
    }
}

/// A running pump; [`Pump::finished`] resolves when the child's end of the pipe is closed
/// (by the child and everything it started) and every byte has been written.
pub struct Pump {
    done: oneshot::Receiver<()>,
}

impl Pump {
    /// Starts copying `pipe` (the read end of the child's stdout or stderr).
    pub fn start(pipe: OwnedFd, stream: OutputStream, config: OutputConfig) -> io::Result<Pump> {
        let (done_tx, done) = oneshot::channel();
        let name = match stream {
            OutputStream::Stdout => "exec-stdout",
            OutputStream::Stderr => "exec-stderr",
        };
        set_nonblocking(&pipe)?;
        let watch = config.watch.clone();
        let shared = Arc::new(PumpShared {
            pipe: File::from(pipe),
            copier: Mutex::new(LineCopier::new(stream, config)),
        });
        if let Some(watch) = watch {
            let weak: Weak<dyn Drainable> = Arc::downgrade(&shared) as Weak<dyn Drainable>;
            watch.register_pump(weak);
        }
        std::thread::Builder::new().name(name.into()).spawn(move || {
            shared.run();
            let _ = done_tx.send(());
        })?;
        Ok(Pump { done })
    }

    /// Waits for the pump to drain, at most `limit` (a grandchild that escaped the process
    /// group may hold the pipe open forever).
    pub async fn finished(self, limit: Duration) -> bool {
        tokio::time::timeout(limit, self.done).await.is_ok()
    }
}

/// One pump's pipe and copier, shared by its thread and by the [`OutputWatch`], which copies
/// out on demand what the pipe holds.
struct PumpShared {
    /// Non-blocking: whoever holds the copier's lock reads only what is there.
    pipe: File,
    copier: Mutex<LineCopier>,
}

impl PumpShared {
    fn run(&self) {
        let mut chunk = vec![0u8; READ_CHUNK];
        while !self.read_available(&mut chunk) {
            if !wait_readable(&self.pipe) {
                self.lock().close();
                return;
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, LineCopier> {
        self.copier.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Copies what the pipe holds now, without waiting; `true` once the pipe is closed.
    fn read_available(&self, chunk: &mut [u8]) -> bool {
        let mut copier = self.lock();
        if copier.closed {
            return true;
        }
        loop {
            match (&self.pipe).read(chunk) {
                Ok(0) => {
                    copier.close();
                    return true;
                }
                Ok(n) => {
                    copier.push(&chunk[..n]);
                    // A pipe read returns all it holds up to the buffer's size: a short read
                    // emptied it.
                    if n < chunk.len() {
                        return false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(_) => {
                    copier.close();
                    return true;
                }
            }
        }
    }
}

impl Drainable for PumpShared {
    fn drain_available(&self) {
        let mut chunk = [0u8; 4096];
        self.read_available(&mut chunk);
    }
}

/// Waits until the pipe has data or is closed; `false` if it cannot be waited for.
fn wait_readable(pipe: &File) -> bool {
    let mut poll = libc::pollfd {
        fd: pipe.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: poll(2) on one pollfd we own, for the duration of the call.
        let ready = unsafe { libc::poll(&raw mut poll, 1, -1) };
        if ready >= 0 {
            return true;
        }
        if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return false;
        }
    }
}

fn set_nonblocking(pipe: &OwnedFd) -> io::Result<()> {
    let fd = pipe.as_raw_fd();
    // SAFETY: fcntl(2) on a descriptor we own, integer arguments only.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Splits a byte stream into whole lines and writes them.
struct LineCopier {
    stream: OutputStream,
    config: OutputConfig,
    /// The start of a line whose newline has not arrived yet.
    held: Vec<u8>,
    /// Scratch space for rewritten lines.
    rewritten: Vec<u8>,
    /// The pipe is closed and the last line written.
    closed: bool,
}

impl LineCopier {
    fn new(stream: OutputStream, config: OutputConfig) -> Self {
        Self {
            stream,
            config,
            held: Vec::new(),
            rewritten: Vec::new(),
            closed: false,
        }
    }

    /// Takes the bytes of one read; writes every line they complete.
    fn push(&mut self, bytes: &[u8]) {
        let Some(last_newline) = memrchr(b'\n', bytes) else {
            self.held.extend_from_slice(bytes);
            if self.held.len() >= MAX_HELD_LINE {
                let held = std::mem::take(&mut self.held);
                self.emit(&held);
            }
            return;
        };
        let (complete, rest) = bytes.split_at(last_newline + 1);
        if self.held.is_empty() {
            // The common case: no copy, the read buffer is written as it is.
            self.emit(complete);
        } else {
            let mut lines = std::mem::take(&mut self.held);
            lines.extend_from_slice(complete);
            self.emit(&lines);
            lines.clear();
            self.held = lines;
        }
        self.held.extend_from_slice(rest);
    }

    /// The pipe closed: a last line without a newline still goes out, newline-terminated so
    /// the next writer does not continue it.
    fn close(&mut self) {
        if std::mem::replace(&mut self.closed, true) {
            return;
        }
        if !self.held.is_empty() {
            let mut held = std::mem::take(&mut self.held);
            held.push(b'\n');
            self.emit(&held);
        }
    }

    /// Writes `lines` (whole lines, or one oversized piece) through the rewriter if any.
    fn emit(&mut self, lines: &[u8]) {
        if let Some(watch) = &self.config.watch {
            watch.scan(lines);
        }
        let Some(rewriter) = self.config.rewriter.clone() else {
            self.config.write(self.stream, lines);
            return;
        };
        self.rewritten.clear();
        for line in lines.split_inclusive(|b| *b == b'\n') {
            let (body, newline) = match line.strip_suffix(b"\n") {
                Some(body) => (body, true),
                None => (line, false),
            };
            self.rewritten.extend_from_slice(&rewriter.rewrite(self.stream, body));
            if newline {
                self.rewritten.push(b'\n');
            }
        }
        self.config.write(self.stream, &self.rewritten);
    }
}

fn memrchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().rposition(|b| *b == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A destination the test can read back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn writes(&self) -> Vec<Vec<u8>> {
            self.0.lock().unwrap().clone()
        }
        fn all(&self) -> Vec<u8> {
            self.writes().concat()
        }
    }

    fn copier(rewriter: Option<Arc<dyn LineRewriter>>) -> (LineCopier, Captured, Captured) {
        let (out, err) = (Captured::default(), Captured::default());
        let mut config = OutputConfig::new(Destinations {
            stdout: Box::new(out.clone()),
            stderr: Box::new(err.clone()),
        });
        if let Some(rewriter) = rewriter {
            config = config.with_rewriter(rewriter);
        }
        (LineCopier::new(OutputStream::Stdout, config), out, err)
    }

    #[test]
    fn only_whole_lines_are_written() {
        let (mut copier, out, err) = copier(None);
        copier.push(b"one\ntw");
        copier.push(b"o\nthr");
        copier.push(b"ee");
        assert_eq!(out.writes(), vec![b"one\n".to_vec(), b"two\n".to_vec()]);
        copier.push(b"\nfour\nfive\n");
        assert_eq!(out.writes().last().unwrap(), b"three\nfour\nfive\n");
        copier.close();
        assert!(err.all().is_empty());
    }

    #[test]
    fn last_line_without_newline_is_kept_and_terminated() {
        let (mut copier, out, _) = copier(None);
        copier.push(b"done\npartial");
        copier.close();
        assert_eq!(out.all(), b"done\npartial\n");
    }

    #[test]
    fn non_utf8_bytes_pass_untouched() {
        let (mut copier, out, _) = copier(None);
        copier.push(b"\xff\xfe bytes \x80\n");
        assert_eq!(out.all(), b"\xff\xfe bytes \x80\n");
    }

    #[test]
    fn long_line_arrives_in_one_write() {
        let (mut copier, out, _) = copier(None);
        let line = vec![b'x'; 3 * 1024 * 1024];
        for piece in line.chunks(READ_CHUNK) {
            copier.push(piece);
        }
        assert!(out.writes().is_empty());
        copier.push(b"\n");
        let writes = out.writes();
        assert_eq!(writes.len(), 1);
        assert_eq!(writes[0].len(), line.len() + 1);
    }

    struct Tagger;
    impl LineRewriter for Tagger {
        fn rewrite<'a>(&self, _: OutputStream, line: &'a [u8]) -> Cow<'a, [u8]> {
            if line.starts_with(b"keep") {
                Cow::Borrowed(line)
            } else {
                Cow::Owned([b"[dd] ".as_slice(), line].concat())
            }
        }
    }

    #[test]
    fn rewriter_sees_each_line_without_its_newline() {
        let (mut copier, out, _) = copier(Some(Arc::new(Tagger)));
        copier.push(b"a\nkeep b\nc");
        copier.close();
        assert_eq!(out.all(), b"[dd] a\nkeep b\n[dd] c\n");
    }

    #[test]
    fn the_watch_reads_what_the_pipe_holds_before_the_pump_thread_does() {
        let watch = OutputWatch::new(&["emory"], |line| line.ends_with(b"MemoryError"));
        let out = Captured::default();
        let config = OutputConfig::new(Destinations {
            stdout: Box::new(out.clone()),
            stderr: Box::new(Captured::default()),
        })
        .with_watch(watch.clone());
        let (reader, mut writer) = std::io::pipe().unwrap();
        let reader = OwnedFd::from(reader);
        set_nonblocking(&reader).unwrap();
        // The pump's shared half, registered with the watch, with no thread running it: only
        // the watch's own read can see the line.
        let shared = Arc::new(PumpShared {
            pipe: File::from(reader),
            copier: Mutex::new(LineCopier::new(OutputStream::Stdout, config)),
        });
        watch.register_pump(Arc::downgrade(&shared) as Weak<dyn Drainable>);
        watch.invocation_submitted("r1");
        writer.write_all(b"Traceback\nMemoryError\n").unwrap();
        assert_eq!(watch.take("r1"), vec![b"MemoryError".to_vec()]);
        assert_eq!(out.all(), b"Traceback\nMemoryError\n", "copied out as the pump would");
        drop(writer);
        assert!(shared.read_available(&mut [0u8; 16]), "then the pipe's end is seen");
        assert!(watch.take_unattributed().is_empty());
    }

    #[test]
    fn pump_copies_a_pipe_to_the_end() {
        let (out, err) = (Captured::default(), Captured::default());
        let config = OutputConfig::new(Destinations {
            stdout: Box::new(out.clone()),
            stderr: Box::new(err.clone()),
        });
        let mut child = std::process::Command::new("sh")
            .args(["-c", "printf 'x\\ny'"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pipe: OwnedFd = child.stdout.take().unwrap().into();
        let pump = Pump::start(pipe, OutputStream::Stderr, config).unwrap();
        child.wait().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        assert!(runtime.block_on(pump.finished(Duration::from_secs(5))));
        assert_eq!(err.all(), b"x\ny\n");
        assert!(out.all().is_empty());
    }
}
