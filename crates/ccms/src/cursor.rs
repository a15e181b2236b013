//! A bounds-checked little-endian reader over a byte slice, shared by the binary snapshot
//! and WAL readers. Every read checks the remaining length first and reports the offset of
//! the field it could not read; nothing here can panic.

use crate::{Error, Result};

/// Reads fixed-size little-endian fields from `bytes`, front to back.
pub(crate) struct Cursor<'a> {
    /// The whole input; `offset` indexes into it.
    bytes: &'a [u8],
    /// Position of the next unread byte; always `<= bytes.len()`.
    offset: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, offset: 0 }
    }

    /// Position of the next unread byte from the start of the input.
    pub(crate) fn offset(&self) -> usize {
        self.offset
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.offset
    }

    /// Takes the next `len` bytes, or fails with [`Error::Truncated`] naming `what()`
    /// (computed only on failure) without consuming anything.
    pub(crate) fn take(&mut self, len: usize, what: impl FnOnce() -> String) -> Result<&'a [u8]> {
        let end = self.offset.checked_add(len);
        match end.and_then(|end| self.bytes.get(self.offset..end)) {
            Some(taken) => {
                self.offset += len;
                Ok(taken)
            }
            None => Err(Error::Truncated {
                offset: self.offset as u64,
                what: what(),
            }),
        }
    }

    fn array<const N: usize>(&mut self, what: impl FnOnce() -> String) -> Result<[u8; N]> {
        let taken = self.take(N, what)?;
        let mut array = [0; N];
        array.copy_from_slice(taken);
        Ok(array)
    }

    pub(crate) fn u8(&mut self, what: impl FnOnce() -> String) -> Result<u8> {
        self.array::<1>(what).map(u8::from_le_bytes)
    }

    pub(crate) fn u16(&mut self, what: impl FnOnce() -> String) -> Result<u16> {
        self.array(what).map(u16::from_le_bytes)
    }

    pub(crate) fn u32(&mut self, what: impl FnOnce() -> String) -> Result<u32> {
        self.array(what).map(u32::from_le_bytes)
    }

    pub(crate) fn i64(&mut self, what: impl FnOnce() -> String) -> Result<i64> {
        self.array(what).map(i64::from_le_bytes)
    }

    /// Checks that `count` entries of at least `bytes_min` bytes each fit in what is left,
    /// before anything is allocated for them. `count_offset` is where the count was read.
    pub(crate) fn check_count(
        &self,
        count: u64,
        bytes_min: u64,
        count_offset: usize,
        what: impl FnOnce() -> String,
    ) -> Result<()> {
        let needed = count.saturating_mul(bytes_min);
        let remaining = self.remaining() as u64;
        if needed <= remaining {
            return Ok(());
        }
        Err(Error::CountTooLarge {
            offset: count_offset as u64,
            what: what(),
            count,
            bytes_min: needed,
            remaining,
        })
    }

    /// Reads `len` bytes as a UTF-8 name.
    pub(crate) fn str(&mut self, len: usize, what: impl Fn() -> String) -> Result<&'a str> {
        let start = self.offset;
        let bytes = self.take(len, &what)?;
        std::str::from_utf8(bytes).map_err(|_| Error::InvalidUtf8 {
            offset: start as u64,
            what: what(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_little_endian_fields_and_reports_offsets() {
        // Goal: fields decode little-endian, and a short read names the field and where it
        // starts without consuming anything.
        let bytes = [0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0xFF];
        let mut cursor = Cursor::new(&bytes);
        assert_eq!(cursor.u16(|| "a".into()).unwrap(), 1);
        assert_eq!(cursor.u32(|| "b".into()).unwrap(), 2);
        let error = cursor.u16(|| "c".into()).unwrap_err();
        assert!(matches!(&error, Error::Truncated { offset: 6, what } if what == "c"));
        assert_eq!(cursor.offset(), 6);
        assert_eq!(cursor.u8(|| "d".into()).unwrap(), 0xFF);
        assert_eq!(cursor.remaining(), 0);
    }

    #[test]
    fn check_count_rejects_counts_the_input_cannot_hold() {
        let bytes = [0u8; 10];
        let cursor = Cursor::new(&bytes);
        assert!(cursor.check_count(2, 5, 0, || "n".into()).is_ok());
        let error = cursor
            .check_count(u64::from(u32::MAX), 4, 0, || "n".into())
            .unwrap_err();
        assert!(matches!(
            error,
            Error::CountTooLarge {
                count: 4_294_967_295,
                bytes_min: 17_179_869_180,
                remaining: 10,
                ..
            }
        ));
    }

    #[test]
    fn str_reports_invalid_utf8_at_its_start() {
        let bytes = [b'o', b'k', 0xC3, 0x28];
        let mut cursor = Cursor::new(&bytes);
        assert_eq!(cursor.str(2, || "first".into()).unwrap(), "ok");
        let error = cursor.str(2, || "second".into()).unwrap_err();
        assert!(matches!(&error, Error::InvalidUtf8 { offset: 2, what } if what == "second"));
    }
}
