//! The C ABI between the `bootstrap` runtime and a handler shared library.
//!
//! This module is the contract both sides compile against; users never touch it directly
//! ([`crate::export_abi!`], [`crate::handler!`] and [`crate::init!`] write the exports). The rules:
//!
//! - The library exports [`ABI_VERSION_SYMBOL`] returning [`ABI_VERSION`]; the bootstrap refuses
//!   to load a library whose version differs, naming both.
//! - Each handler is one export named [`HANDLER_SYMBOL_PREFIX`] + its name, of type
//!   [`HandlerFn`]. `libapp.so:NAME` picks `NAME`; a bare `libapp.so` picks [`DEFAULT_HANDLER_NAME`].
//! - An optional [`INIT_SYMBOL`] of type [`InitFn`] runs once at load; its time is the init duration.
//! - Input buffers belong to the bootstrap and are only borrowed for the call. Output buffers are
//!   allocated by the library and handed back through [`FREE_SYMBOL`] ([`FreeFn`]), so each side
//!   frees what it allocated, whatever allocator each uses.
//! - Panics never cross the boundary: the library catches them and returns [`STATUS_ERROR`].

/// Version of this ABI. Bumped on any change of the types or rules in this module.
///
/// ```
/// assert_eq!(sdk::abi::ABI_VERSION, 1);
/// ```
pub const ABI_VERSION: u32 = 1;

/// Export returning the ABI version the library was built against: `extern "C" fn() -> u32`.
///
/// ```
/// assert_eq!(sdk::abi::ABI_VERSION_SYMBOL, "dd_lambda_abi_version");
/// ```
pub const ABI_VERSION_SYMBOL: &str = "dd_lambda_abi_version";

/// Optional export run once at load, of type [`InitFn`].
///
/// ```
/// assert_eq!(sdk::abi::INIT_SYMBOL, "dd_lambda_init");
/// ```
pub const INIT_SYMBOL: &str = "dd_lambda_init";

/// Export that frees an [`OwnedBuffer`] the library returned, of type [`FreeFn`].
///
/// ```
/// assert_eq!(sdk::abi::FREE_SYMBOL, "dd_lambda_free");
/// ```
pub const FREE_SYMBOL: &str = "dd_lambda_free";

/// Prefix of every handler export; the handler `echo` is exported as `dd_lambda_handler_echo`.
///
/// ```
/// assert_eq!(format!("{}echo", sdk::abi::HANDLER_SYMBOL_PREFIX), "dd_lambda_handler_echo");
/// ```
pub const HANDLER_SYMBOL_PREFIX: &str = "dd_lambda_handler_";

/// The handler picked when `DD_LAMBDA_HANDLER` names a library without `:NAME`.
///
/// ```
/// assert_eq!(sdk::abi::DEFAULT_HANDLER_NAME, "handler");
/// ```
pub const DEFAULT_HANDLER_NAME: &str = "handler";

/// The handler succeeded: the output buffer holds the response body.
///
/// ```
/// assert_ne!(sdk::abi::STATUS_OK, sdk::abi::STATUS_ERROR);
/// ```
pub const STATUS_OK: i32 = 0;
/// The handler failed (error or panic): the output buffer holds a JSON error body
/// `{"errorType", "errorMessage", "stackTrace"}` ready for the Runtime API's `/error`.
///
/// ```
/// assert_eq!(sdk::abi::STATUS_ERROR, 1);
/// ```
pub const STATUS_ERROR: i32 = 1;

/// Bytes borrowed from the caller for the duration of one call. `ptr` may be null when `len` is 0.
///
/// ```
/// let bytes = sdk::abi::BorrowedBytes::from_slice(b"{}");
/// assert_eq!(bytes.len, 2);
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BorrowedBytes {
    /// Start of the bytes.
    pub ptr: *const u8,
    /// Number of bytes.
    pub len: usize,
}

impl BorrowedBytes {
    /// Borrows a slice for an ABI call.
    ///
    /// ```
    /// let bytes = sdk::abi::BorrowedBytes::from_slice(b"abc");
    /// assert_eq!(unsafe { bytes.as_slice() }, b"abc");
    /// ```
    pub fn from_slice(bytes: &[u8]) -> Self {
        Self {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
        }
    }

    /// An empty value, for absent optional fields.
    ///
    /// ```
    /// assert_eq!(unsafe { sdk::abi::BorrowedBytes::empty().as_slice() }, b"");
    /// ```
    pub const fn empty() -> Self {
        Self {
            ptr: std::ptr::null(),
            len: 0,
        }
    }

    /// Views the bytes.
    ///
    /// # Safety
    /// `ptr` must point to `len` readable bytes that outlive the returned slice (or be null with `len` 0).
    ///
    /// ```
    /// let data = vec![1u8, 2];
    /// let bytes = sdk::abi::BorrowedBytes::from_slice(&data);
    /// assert_eq!(unsafe { bytes.as_slice() }, &[1, 2]);
    /// ```
    pub unsafe fn as_slice<'a>(&self) -> &'a [u8] {
        if self.ptr.is_null() || self.len == 0 {
            &[]
        } else {
            // SAFETY: guaranteed by the caller.
            unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
        }
    }
}

/// One invocation as the bootstrap passes it to a handler. Every field is borrowed for the call;
/// absent optional headers are empty.
///
/// ```
/// use sdk::abi::{BorrowedBytes, RawInvocation};
///
/// let invocation = RawInvocation {
///     event: BorrowedBytes::from_slice(br#"{"id": 1}"#),
///     request_id: BorrowedBytes::from_slice(b"8476a536-e9f4-11e8-9739-2dfe598c3fcd"),
///     deadline_ms: 1_700_000_000_000,
///     invoked_function_arn: BorrowedBytes::from_slice(b"arn:aws:lambda:us-east-1:123456789012:function:f"),
///     xray_trace_id: BorrowedBytes::empty(),
///     client_context: BorrowedBytes::empty(),
///     cognito_identity: BorrowedBytes::empty(),
///     tenant_id: BorrowedBytes::empty(),
/// };
/// assert_eq!(unsafe { invocation.event.as_slice() }, br#"{"id": 1}"#);
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawInvocation {
    /// The event body, exactly as the Runtime API sent it.
    pub event: BorrowedBytes,
    /// `Lambda-Runtime-Aws-Request-Id`.
    pub request_id: BorrowedBytes,
    /// `Lambda-Runtime-Deadline-Ms`: the deadline in milliseconds since the Unix epoch.
    pub deadline_ms: u64,
    /// `Lambda-Runtime-Invoked-Function-Arn`.
    pub invoked_function_arn: BorrowedBytes,
    /// `Lambda-Runtime-Trace-Id` (X-Ray), empty when absent.
    pub xray_trace_id: BorrowedBytes,
    /// `Lambda-Runtime-Client-Context` (JSON), empty when absent.
    pub client_context: BorrowedBytes,
    /// `Lambda-Runtime-Cognito-Identity` (JSON), empty when absent.
    pub cognito_identity: BorrowedBytes,
    /// `Lambda-Runtime-Aws-Tenant-Id`, empty when absent.
    pub tenant_id: BorrowedBytes,
}

/// A buffer allocated by the library and returned to the bootstrap, which must hand it back to
/// [`FREE_SYMBOL`] once done.
///
/// ```
/// let buffer = sdk::abi::OwnedBuffer::from_vec(Vec::with_capacity(8));
/// assert_eq!((buffer.len, buffer.cap), (0, 8));
/// drop(unsafe { buffer.into_vec() });
/// ```
#[repr(C)]
#[derive(Debug)]
pub struct OwnedBuffer {
    /// Start of the bytes (from a `Vec<u8>`'s allocation).
    pub ptr: *mut u8,
    /// Number of initialised bytes.
    pub len: usize,
    /// Capacity of the allocation.
    pub cap: usize,
}

impl OwnedBuffer {
    /// An empty buffer that owns nothing.
    ///
    /// ```
    /// let empty = sdk::abi::OwnedBuffer::empty();
    /// assert!(empty.ptr.is_null());
    /// ```
    pub const fn empty() -> Self {
        Self {
            ptr: std::ptr::null_mut(),
            len: 0,
            cap: 0,
        }
    }

    /// Leaks a vector into a buffer for the other side of the ABI.
    ///
    /// ```
    /// let buf = sdk::abi::OwnedBuffer::from_vec(b"hi".to_vec());
    /// assert_eq!(unsafe { buf.into_vec() }, b"hi");
    /// ```
    pub fn from_vec(bytes: Vec<u8>) -> Self {
        let mut bytes = std::mem::ManuallyDrop::new(bytes);
        Self {
            ptr: bytes.as_mut_ptr(),
            len: bytes.len(),
            cap: bytes.capacity(),
        }
    }

    /// Takes the vector back. Only the side that built the buffer may call this.
    ///
    /// # Safety
    /// The buffer must come from [`OwnedBuffer::from_vec`] in the same allocator's world and
    /// must not be used again.
    ///
    /// ```
    /// let buf = sdk::abi::OwnedBuffer::from_vec(vec![7u8]);
    /// assert_eq!(unsafe { buf.into_vec() }, vec![7u8]);
    /// ```
    pub unsafe fn into_vec(self) -> Vec<u8> {
        if self.ptr.is_null() {
            Vec::new()
        } else {
            // SAFETY: guaranteed by the caller.
            unsafe { Vec::from_raw_parts(self.ptr, self.len, self.cap) }
        }
    }
}

/// `extern "C" fn() -> u32`: see [`ABI_VERSION_SYMBOL`].
///
/// ```
/// extern "C" fn version() -> u32 { sdk::abi::ABI_VERSION }
/// let f: sdk::abi::AbiVersionFn = version;
/// assert_eq!(unsafe { f() }, 1);
/// ```
pub type AbiVersionFn = unsafe extern "C" fn() -> u32;
/// `extern "C" fn(*mut OwnedBuffer) -> i32`: runs the library's init; on [`STATUS_ERROR`] the
/// buffer holds a JSON error body.
///
/// ```
/// unsafe extern "C" fn init(_error_out: *mut sdk::abi::OwnedBuffer) -> i32 { sdk::abi::STATUS_OK }
/// let f: sdk::abi::InitFn = init;
/// assert_eq!(unsafe { f(std::ptr::null_mut()) }, sdk::abi::STATUS_OK);
/// ```
pub type InitFn = unsafe extern "C" fn(error_out: *mut OwnedBuffer) -> i32;
/// `extern "C" fn(*const RawInvocation, *mut OwnedBuffer) -> i32`: runs one invocation; the
/// buffer holds the response body ([`STATUS_OK`]) or a JSON error body ([`STATUS_ERROR`]).
///
/// ```
/// use sdk::abi::{OwnedBuffer, RawInvocation};
/// unsafe extern "C" fn refuse(_: *const RawInvocation, _: *mut OwnedBuffer) -> i32 { sdk::abi::STATUS_ERROR }
/// let f: sdk::abi::HandlerFn = refuse;
/// assert_eq!(unsafe { f(std::ptr::null(), std::ptr::null_mut()) }, sdk::abi::STATUS_ERROR);
/// ```
pub type HandlerFn = unsafe extern "C" fn(invocation: *const RawInvocation, out: *mut OwnedBuffer) -> i32;
/// `extern "C" fn(OwnedBuffer)`: frees a buffer the library returned.
///
/// ```
/// unsafe extern "C" fn free(buffer: sdk::abi::OwnedBuffer) { drop(unsafe { buffer.into_vec() }) }
/// let f: sdk::abi::FreeFn = free;
/// unsafe { f(sdk::abi::OwnedBuffer::from_vec(vec![1, 2, 3])) };
/// ```
pub type FreeFn = unsafe extern "C" fn(buffer: OwnedBuffer);
