//! The `current.wal` reader (COMPAT.md §6.4). The layout is in the crate doc.

use crate::cursor::Cursor;
use crate::{Error, Result, WAL_FILE_MAGIC, WAL_PAYLOAD_BYTES_MAX, WAL_RECORD_MAGIC};

/// One sample from `current.wal`. Cluster and host are those of the file's directory.
#[derive(Debug, Clone, PartialEq)]
pub struct WalRecord {
    /// Unix seconds of the sample.
    pub timestamp_s: i64,
    /// Metric name (`cpu_load`).
    pub metric: String,
    /// Level names below the host (`["socket0"]`, `["socket0", "core3"]`); empty for the
    /// host level itself.
    pub selector: Vec<String>,
    /// The sample, bit for bit as stored.
    pub value: f32,
}

/// Result of reading a `current.wal`: every good record up to the first bad one.
#[derive(Debug, Clone, PartialEq)]
pub struct WalContents {
    /// The records in file order.
    pub records: Vec<WalRecord>,
    /// Whether the file ended cleanly after the last record, or where reading stopped.
    pub end: WalEnd,
}

/// How reading a `current.wal` ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalEnd {
    /// The file ends exactly after a record (or is empty, or holds only the header).
    Clean,
    /// Reading stopped at a record that is cut off or damaged; everything from `offset` on is
    /// ignored, as cc-metric-store ignores it. Expected after a crash mid-write.
    TornTail {
        /// Byte offset of the first record that was not read (from the start of the file).
        offset: u64,
        /// Why: `short read: …`, `bad record magic …`, `payload_len … exceeds …`,
        /// `CRC mismatch: …` or `malformed payload: …`.
        reason: String,
    },
}

/// Reads a `current.wal`, stopping at the first record that is cut off or damaged.
///
/// An empty file is [`WalEnd::Clean`] with no records: cc-metric-store creates the file and
/// writes its header through a buffer, so a crash before the first flush leaves 0 bytes. A
/// file of 1 to 3 bytes that begins like the header is a torn tail at offset 0.
///
/// # Errors
///
/// [`Error::BadMagic`] if the file does not start with [`WAL_FILE_MAGIC`]; cc-metric-store
/// then replays nothing from the file (it still loads the host's snapshots).
pub fn read_wal(bytes: &[u8]) -> Result<WalContents> {
    let magic_bytes = WAL_FILE_MAGIC.to_le_bytes();
    if bytes.len() < magic_bytes.len() {
        if magic_bytes.starts_with(bytes) {
            let end = if bytes.is_empty() {
                WalEnd::Clean
            } else {
                WalEnd::TornTail {
                    offset: 0,
                    reason: format!("short read: file header has {} of 4 bytes", bytes.len()),
                }
            };
            return Ok(WalContents {
                records: Vec::new(),
                end,
            });
        }
        let mut found = [0; 4];
        found
            .iter_mut()
            .zip(bytes)
            .for_each(|(target, source)| *target = *source);
        return Err(bad_file_magic(u32::from_le_bytes(found)));
    }

    let mut cursor = Cursor::new(bytes);
    let magic = cursor.u32(|| "WAL file magic (u32)".to_owned())?;
    if magic != WAL_FILE_MAGIC {
        return Err(bad_file_magic(magic));
    }

    let mut records = Vec::new();
    while cursor.remaining() > 0 {
        let offset = cursor.offset() as u64;
        match read_record(&mut cursor) {
            Ok(record) => records.push(record),
            Err(reason) => {
                let end = WalEnd::TornTail { offset, reason };
                return Ok(WalContents { records, end });
            }
        }
    }
    Ok(WalContents {
        records,
        end: WalEnd::Clean,
    })
}

fn bad_file_magic(found: u32) -> Error {
    Error::BadMagic {
        what: "WAL file",
        expected: WAL_FILE_MAGIC,
        found,
    }
}

/// Reads one record in the order cc-metric-store does (magic, length, payload, CRC, then the
/// payload's fields); the error is the torn-tail reason.
fn read_record(cursor: &mut Cursor<'_>) -> Result<WalRecord, String> {
    let short_read = |error: Error| format!("short read: {error}");
    let magic = cursor
        .u32(|| "record magic (u32)".to_owned())
        .map_err(short_read)?;
    if magic != WAL_RECORD_MAGIC {
        return Err(format!(
            "bad record magic {magic:#010x}, expected {WAL_RECORD_MAGIC:#010x}"
        ));
    }
    let payload_len = cursor
        .u32(|| "payload_len (u32)".to_owned())
        .map_err(short_read)?;
    if payload_len > WAL_PAYLOAD_BYTES_MAX {
        return Err(format!(
            "payload_len {payload_len} exceeds the limit of {WAL_PAYLOAD_BYTES_MAX} bytes (1 MiB)"
        ));
    }
    let payload = cursor
        .take(payload_len as usize, || {
            format!("payload of {payload_len} bytes")
        })
        .map_err(short_read)?;
    let stored = cursor.u32(|| "CRC (u32)".to_owned()).map_err(short_read)?;
    let computed = crc32fast::hash(payload);
    if stored != computed {
        return Err(format!(
            "CRC mismatch: stored {stored:#010x}, computed {computed:#010x} over {payload_len} payload bytes"
        ));
    }
    parse_payload(payload)
        .map_err(|reason| format!("malformed payload of {payload_len} bytes: {reason}"))
}

/// Decodes a payload whose CRC matched. Offsets in errors are from the payload's start.
fn parse_payload(payload: &[u8]) -> Result<WalRecord, String> {
    let mut cursor = Cursor::new(payload);
    let to_reason = |error: Error| error.to_string();
    let timestamp_s = cursor
        .i64(|| "timestamp (i64)".to_owned())
        .map_err(to_reason)?;
    let metric_len = cursor
        .u16(|| "metric_len (u16)".to_owned())
        .map_err(to_reason)?;
    let metric = cursor
        .str(usize::from(metric_len), || {
            format!("metric name of {metric_len} bytes")
        })
        .map_err(to_reason)?
        .to_owned();
    let selector_count = cursor
        .u8(|| "selector_count (u8)".to_owned())
        .map_err(to_reason)?;
    // At most 255 names, each at least its 1-byte length, so this cannot over-allocate.
    let mut selector = Vec::with_capacity(usize::from(selector_count).min(cursor.remaining()));
    for index in 0..selector_count {
        let len = cursor
            .u8(|| format!("length (u8) of selector level {index}"))
            .map_err(to_reason)?;
        let name = cursor
            .str(usize::from(len), || {
                format!("selector level {index} of {len} bytes")
            })
            .map_err(to_reason)?;
        selector.push(name.to_owned());
    }
    let value = cursor.u32(|| "value (f32)".to_owned()).map_err(to_reason)?;
    // NOTE: cc-metric-store ignores bytes after the value. Strata does not: the payload
    // length is the sum of the fields, so left-over bytes mean a name length was cut when it
    // was written (a selector over 255 bytes, §6.4) and every field read is garbage.
    if cursor.remaining() > 0 {
        return Err(format!(
            "{} bytes left over after the value",
            cursor.remaining()
        ));
    }
    Ok(WalRecord {
        timestamp_s,
        metric,
        selector,
        value: f32::from_bits(value),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_files_are_clean_torn_or_bad_magic() {
        // Goal: files shorter than the header never panic, and only a prefix of the real
        // header counts as torn rather than foreign.
        assert_eq!(
            read_wal(&[]).unwrap(),
            WalContents {
                records: vec![],
                end: WalEnd::Clean
            }
        );
        let contents = read_wal(&WAL_FILE_MAGIC.to_le_bytes()[..3]).unwrap();
        assert_eq!(
            contents.end,
            WalEnd::TornTail {
                offset: 0,
                reason: "short read: file header has 3 of 4 bytes".into()
            }
        );
        let error = read_wal(&[0x02, 0x00]).unwrap_err();
        assert!(matches!(
            error,
            Error::BadMagic {
                found: 0x0000_0002,
                ..
            }
        ));
    }

    #[test]
    fn payload_parser_rejects_leftover_bytes_and_overruns() {
        // Goal: the payload's own lengths must add up exactly.
        let mut payload = Vec::new();
        payload.extend_from_slice(&7i64.to_le_bytes());
        payload.extend_from_slice(&1u16.to_le_bytes());
        payload.push(b'm');
        payload.push(0);
        payload.extend_from_slice(&1.5f32.to_bits().to_le_bytes());
        let record = parse_payload(&payload).unwrap();
        assert_eq!((record.timestamp_s, record.metric.as_str()), (7, "m"));
        assert_eq!(record.value, 1.5);

        let mut longer = payload.clone();
        longer.push(0);
        assert_eq!(
            parse_payload(&longer).unwrap_err(),
            "1 bytes left over after the value"
        );
        let mut overrun = payload.clone();
        overrun[8] = 200; // metric_len 200 in a 16-byte payload
        assert_eq!(
            parse_payload(&overrun).unwrap_err(),
            "truncated at byte 10: metric name of 200 bytes"
        );
    }
}
