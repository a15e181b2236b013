//! The one rule for cluster and host names, checked wherever a name enters Strata: line
//! protocol tags, the `cluster` query parameter of `/api/write`, a NATS subscription's
//! `cluster-tag`, and the directory names of `strata import`. cc-metric-store turns these names into directories
//! (`<root>/<cluster>/<host>/`), so a name must be usable as one path component
//! (COMPAT.md decision 12).

use std::fmt;

/// Longest part of a refused name echoed back in an error message: a 60 KB name must not
/// become a 60 KB error.
const ECHO_BYTES_MAX: usize = 64;

/// Why a cluster or host name is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    Empty,
    TooLong {
        bytes: usize,
        max: usize,
    },
    /// `/`, `\`, `..` or exactly `.`: the name would leave or alias its directory.
    Path,
    /// A control character (NUL, newline, …): unprintable in logs and file names.
    Control,
}

/// A refused name with what it names (`cluster`, `host`) and a clipped copy of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {shown:?} {reason}")]
pub struct InvalidName {
    pub what: &'static str,
    /// The name, cut to [`ECHO_BYTES_MAX`] bytes.
    pub shown: String,
    pub reason: NameError,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("is empty"),
            Self::TooLong { bytes, max } => {
                write!(f, "is {bytes} bytes long; the limit is {max} bytes")
            }
            Self::Path => f.write_str("contains '/', '\\' or '..', or is '.'"),
            Self::Control => f.write_str("contains a control character"),
        }
    }
}

/// Checks a cluster or host name (`what` says which, for the message).
pub fn check_name(what: &'static str, name: &str, bytes_max: usize) -> Result<(), InvalidName> {
    let reason = if name.is_empty() {
        NameError::Empty
    } else if name.len() > bytes_max {
        NameError::TooLong {
            bytes: name.len(),
            max: bytes_max,
        }
    } else {
        match scan_name(name) {
            Scan { path: true, .. } => NameError::Path,
            Scan { control: true, .. } => NameError::Control,
            _ => return Ok(()),
        }
    };
    let mut end = name.len().min(ECHO_BYTES_MAX);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    Err(InvalidName {
        what,
        shown: name[..end].to_owned(),
        reason,
    })
}

/// What [`scan_name`] found in a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Scan {
    /// `/`, `\`, `..` or exactly `.`.
    path: bool,
    /// A character for which [`char::is_control`] holds.
    control: bool,
}

/// One pass over the bytes of `name`. Ingest checks the cluster and host of every line:
/// `str::contains("..")` sets up a substring searcher per call, and the three searches cost
/// 4.6 % of the server's CPU on the shared workload (perf, issue 10).
fn scan_name(name: &str) -> Scan {
    let mut scan = Scan {
        path: name == ".",
        control: false,
    };
    let mut previous = 0u8;
    for &byte in name.as_bytes() {
        scan.path |= byte == b'/' || byte == b'\\' || (byte == b'.' && previous == b'.');
        // The control characters are U+0000–U+001F, U+007F and U+0080–U+009F; the last are
        // 0xC2 0x80–0x9F in UTF-8, and 0xC2 is never a continuation byte.
        scan.control |= byte < 0x20 || byte == 0x7f || (previous == 0xc2 && byte < 0xa0);
        previous = byte;
    }
    scan
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The byte scan decides exactly as the `str` searches it replaced.
        #[test]
        fn the_byte_scan_agrees_with_str_searches(name in "(\\PC|[./\\\\\u{0}-\u{1f}\u{7f}-\u{a0}])*") {
            let scan = scan_name(&name);
            let path = name.contains(['/', '\\']) || name.contains("..") || name == ".";
            prop_assert_eq!(scan.path, path);
            prop_assert_eq!(scan.control, name.chars().any(char::is_control));
        }
    }

    #[test]
    fn accepts_ordinary_names_and_refuses_the_rest() {
        for good in ["alex", "a0603", "node-1.example", "x.y", "ünï"] {
            assert_eq!(check_name("host", good, 256), Ok(()), "{good}");
        }
        let reason = |name: &str| check_name("host", name, 8).map_err(|e| e.reason);
        assert_eq!(reason(""), Err(NameError::Empty));
        assert_eq!(
            reason("123456789"),
            Err(NameError::TooLong { bytes: 9, max: 8 })
        );
        for bad in ["a/b", "a\\b", "..", "..evil", "x..y", "."] {
            assert_eq!(reason(bad), Err(NameError::Path), "{bad}");
        }
        for bad in ["a\0b", "a\nb", "\u{7f}", "a\u{85}"] {
            assert_eq!(reason(bad), Err(NameError::Control), "{bad:?}");
        }
    }

    #[test]
    fn the_message_names_the_field_and_clips_the_name() {
        let long = "é".repeat(1000);
        let error = check_name("cluster", &long, 256).unwrap_err();
        assert_eq!(error.shown.len(), 64);
        let message = error.to_string();
        assert!(message.starts_with("cluster \"éé"), "{message}");
        assert!(message.ends_with("the limit is 256 bytes"), "{message}");
    }
}
