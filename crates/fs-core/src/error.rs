//! The error type of every fs-core operation.
//!
//! It has exactly the cases of `wasi:filesystem/types.error-code`, in the
//! same order, so binding layers translate it with a plain `match` and no
//! information is lost or invented on the way.

use core::fmt;

/// One case per `wasi:filesystem/types.error-code`; the POSIX errno each
/// corresponds to is given in the comment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// EACCES
    Access,
    /// EAGAIN
    WouldBlock,
    /// EALREADY
    Already,
    /// EBADF
    BadDescriptor,
    /// EBUSY
    Busy,
    /// EDEADLK
    Deadlock,
    /// EDQUOT
    Quota,
    /// EEXIST
    Exist,
    /// EFBIG
    FileTooLarge,
    /// EILSEQ
    IllegalByteSequence,
    /// EINPROGRESS
    InProgress,
    /// EINTR
    Interrupted,
    /// EINVAL
    Invalid,
    /// EIO
    Io,
    /// EISDIR
    IsDirectory,
    /// ELOOP
    Loop,
    /// EMLINK
    TooManyLinks,
    /// EMSGSIZE
    MessageSize,
    /// ENAMETOOLONG
    NameTooLong,
    /// ENODEV
    NoDevice,
    /// ENOENT
    NoEntry,
    /// ENOLCK
    NoLock,
    /// ENOMEM
    InsufficientMemory,
    /// ENOSPC
    InsufficientSpace,
    /// ENOTDIR
    NotDirectory,
    /// ENOTEMPTY
    NotEmpty,
    /// ENOTRECOVERABLE
    NotRecoverable,
    /// ENOTSUP
    Unsupported,
    /// ENOTTY
    NoTty,
    /// ENXIO
    NoSuchDevice,
    /// EOVERFLOW
    Overflow,
    /// EPERM
    NotPermitted,
    /// EPIPE
    Pipe,
    /// EROFS
    ReadOnly,
    /// ESPIPE
    InvalidSeek,
    /// ETXTBSY
    TextFileBusy,
    /// EXDEV
    CrossDevice,
}

impl ErrorCode {
    /// Every case, in WIT order (useful for exhaustive mapping tests).
    pub const ALL: [ErrorCode; 37] = {
        use ErrorCode::*;
        [
            Access,
            WouldBlock,
            Already,
            BadDescriptor,
            Busy,
            Deadlock,
            Quota,
            Exist,
            FileTooLarge,
            IllegalByteSequence,
            InProgress,
            Interrupted,
            Invalid,
            Io,
            IsDirectory,
            Loop,
            TooManyLinks,
            MessageSize,
            NameTooLong,
            NoDevice,
            NoEntry,
            NoLock,
            InsufficientMemory,
            InsufficientSpace,
            NotDirectory,
            NotEmpty,
            NotRecoverable,
            Unsupported,
            NoTty,
            NoSuchDevice,
            Overflow,
            NotPermitted,
            Pipe,
            ReadOnly,
            InvalidSeek,
            TextFileBusy,
            CrossDevice,
        ]
    };

    /// The Linux errno value this code stands for.
    pub const fn errno(self) -> i32 {
        use ErrorCode::*;
        match self {
            Access => 13,
            WouldBlock => 11,
            Already => 114,
            BadDescriptor => 9,
            Busy => 16,
            Deadlock => 35,
            Quota => 122,
            Exist => 17,
            FileTooLarge => 27,
            IllegalByteSequence => 84,
            InProgress => 115,
            Interrupted => 4,
            Invalid => 22,
            Io => 5,
            IsDirectory => 21,
            Loop => 40,
            TooManyLinks => 31,
            MessageSize => 90,
            NameTooLong => 36,
            NoDevice => 19,
            NoEntry => 2,
            NoLock => 37,
            InsufficientMemory => 12,
            InsufficientSpace => 28,
            NotDirectory => 20,
            NotEmpty => 39,
            NotRecoverable => 131,
            Unsupported => 95,
            NoTty => 25,
            NoSuchDevice => 6,
            Overflow => 75,
            NotPermitted => 1,
            Pipe => 32,
            ReadOnly => 30,
            InvalidSeek => 29,
            TextFileBusy => 26,
            CrossDevice => 18,
        }
    }

    /// The code for a Linux errno, if it has one. `ENFILE`/`EMFILE` have no
    /// WASI case; they map to `insufficient-memory`, which is what fs-core
    /// reports when its open-handle limit is reached.
    pub fn from_errno(errno: i32) -> Option<ErrorCode> {
        match errno {
            23 | 24 => Some(ErrorCode::InsufficientMemory),
            // ENOTSUP and EOPNOTSUPP share a value on Linux.
            _ => Self::ALL.iter().copied().find(|e| e.errno() == errno),
        }
    }

    /// The kebab-case name used in WIT.
    pub const fn name(self) -> &'static str {
        use ErrorCode::*;
        match self {
            Access => "access",
            WouldBlock => "would-block",
            Already => "already",
            BadDescriptor => "bad-descriptor",
            Busy => "busy",
            Deadlock => "deadlock",
            Quota => "quota",
            Exist => "exist",
            FileTooLarge => "file-too-large",
            IllegalByteSequence => "illegal-byte-sequence",
            InProgress => "in-progress",
            Interrupted => "interrupted",
            Invalid => "invalid",
            Io => "io",
            IsDirectory => "is-directory",
            Loop => "loop",
            TooManyLinks => "too-many-links",
            MessageSize => "message-size",
            NameTooLong => "name-too-long",
            NoDevice => "no-device",
            NoEntry => "no-entry",
            NoLock => "no-lock",
            InsufficientMemory => "insufficient-memory",
            InsufficientSpace => "insufficient-space",
            NotDirectory => "not-directory",
            NotEmpty => "not-empty",
            NotRecoverable => "not-recoverable",
            Unsupported => "unsupported",
            NoTty => "no-tty",
            NoSuchDevice => "no-such-device",
            Overflow => "overflow",
            NotPermitted => "not-permitted",
            Pipe => "pipe",
            ReadOnly => "read-only",
            InvalidSeek => "invalid-seek",
            TextFileBusy => "text-file-busy",
            CrossDevice => "cross-device",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ErrorCode {}

#[cfg(feature = "std")]
impl From<ErrorCode> for std::io::Error {
    fn from(e: ErrorCode) -> Self {
        std::io::Error::from_raw_os_error(e.errno())
    }
}

/// Result of every fs-core operation.
pub type Result<T, E = ErrorCode> = core::result::Result<T, E>;
