//! A byte buffer of fixed capacity on the stack: what a signal handler can build text in, since
//! it must not allocate.

/// Up to `N` bytes; what does not fit is dropped and remembered ([`StackBuf::overflowed`]).
pub struct StackBuf<const N: usize> {
    bytes: [u8; N],
    len: usize,
    overflowed: bool,
}

impl<const N: usize> StackBuf<N> {
    pub const fn new() -> Self {
        Self {
            bytes: [0; N],
            len: 0,
            overflowed: false,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) -> &mut Self {
        let room = N - self.len;
        let taken = bytes.len().min(room);
        self.bytes[self.len..self.len + taken].copy_from_slice(&bytes[..taken]);
        self.len += taken;
        self.overflowed |= taken < bytes.len();
        self
    }

    /// A number in decimal, without allocating.
    pub fn push_u64(&mut self, mut value: u64) -> &mut Self {
        let mut digits = [0u8; 20];
        let mut start = digits.len();
        loop {
            start -= 1;
            digits[start] = b'0' + (value % 10) as u8;
            value /= 10;
            if value == 0 {
                break;
            }
        }
        self.push(&digits[start..])
    }

    /// Bytes inside a JSON string: quotes and backslashes escaped, control bytes dropped.
    pub fn push_json_text(&mut self, text: &[u8]) -> &mut Self {
        for &byte in text {
            match byte {
                b'"' => self.push(b"\\\""),
                b'\\' => self.push(b"\\\\"),
                0..=0x1f => self,
                _ => self.push(&[byte]),
            };
        }
        self
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether something did not fit: the text is cut and must not be sent as it is.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_text_and_overflow() {
        let mut buf = StackBuf::<64>::new();
        buf.push(b"n=")
            .push_u64(0)
            .push(b",")
            .push_u64(u64::MAX)
            .push(b" ")
            .push_json_text(b"a\"b\\c\n");
        assert_eq!(buf.as_bytes(), b"n=0,18446744073709551615 a\\\"b\\\\c");
        assert!(!buf.overflowed());
        let mut small = StackBuf::<4>::new();
        small.push(b"abcdef");
        assert_eq!((small.as_bytes(), small.overflowed()), (&b"abcd"[..], true));
    }
}
