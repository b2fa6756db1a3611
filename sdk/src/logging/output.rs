//! Where lines go: the process's stdout, one `write` per line, through a buffer kept per thread.
use std::cell::RefCell;
use std::io::Write;

/// A buffer that grew past this (one huge record) is released rather than kept for the
/// thread's lifetime.
const KEPT_CAPACITY: usize = 16 * 1024;

thread_local! {
    static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's line buffer, emptied. A record logged while another is being
/// rendered on the same thread (a `Display` that logs), or while the thread is exiting, gets a
/// buffer of its own instead.
pub(super) fn with_line_buffer(f: impl FnOnce(&mut Vec<u8>)) {
    let mut f = Some(f);
    let _ = LINE.try_with(|cell| {
        if let Ok(mut line) = cell.try_borrow_mut() {
            line.clear();
            if let Some(f) = f.take() {
                f(&mut line);
            }
            if line.capacity() > KEPT_CAPACITY {
                *line = Vec::new();
            }
        }
    });
    if let Some(f) = f {
        f(&mut Vec::new());
    }
}

/// Writes one complete line. Rust's stdout writes a chunk that ends with a newline straight
/// through with one `write` (after flushing anything a `print!` left unterminated), and its
/// lock orders this library's own writers. A closed stdout is ignored by std (EBADF), a broken
/// pipe or a full disk drops the line: logging never fails the handler.
pub(super) fn write_line(line: &[u8]) {
    let _ = std::io::stdout().lock().write_all(line);
}

pub(super) fn flush() {
    let _ = std::io::stdout().lock().flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_buffer_is_reused_and_reentrant_calls_get_their_own() {
        let mut first = 0usize;
        with_line_buffer(|line| {
            line.extend_from_slice(b"outer");
            first = line.as_ptr() as usize;
            with_line_buffer(|inner| {
                assert!(inner.is_empty(), "a fresh buffer, not the outer one");
                inner.extend_from_slice(b"inner");
            });
            assert_eq!(line, b"outer");
        });
        with_line_buffer(|line| {
            assert!(line.is_empty(), "emptied between records");
            assert!(line.capacity() >= 5, "the allocation is kept");
            assert_eq!(line.as_ptr() as usize, first);
        });
    }

    #[test]
    fn a_huge_line_does_not_pin_its_buffer() {
        with_line_buffer(|line| line.resize(KEPT_CAPACITY * 4, b'x'));
        with_line_buffer(|line| assert_eq!(line.capacity(), 0));
    }
}
