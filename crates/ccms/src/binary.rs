//! The binary snapshot reader (`<from>.bin`, COMPAT.md §6.3). The layout is in the crate doc.

use std::collections::BTreeMap;

use crate::cursor::Cursor;
use crate::{
    Checkpoint, Error, LEVEL_DEPTH_MAX, Level, MetricData, Result, SNAPSHOT_MAGIC, child_path,
    echo, level_label,
};

/// Fewest bytes one metric entry takes: `name_len` u16, `frequency` i64, `start` i64,
/// `num_values` u32 (an empty name and no values).
const METRIC_BYTES_MIN: u64 = 2 + 8 + 8 + 4;
/// Fewest bytes one child entry takes: `name_len` u16 and an empty Level (two u32 counts).
const CHILD_BYTES_MIN: u64 = 2 + 4 + 4;
/// Bytes per stored value (f32 bits).
const VALUE_BYTES: u64 = 4;

/// Decodes a binary snapshot (`<from>.bin`).
///
/// Bytes after the host level are ignored, as cc-metric-store ignores them. Every count is
/// checked against the bytes left before anything is allocated for it, and levels may nest
/// at most [`LEVEL_DEPTH_MAX`] deep, so hostile input costs at most a few times its size.
///
/// # Errors
///
/// [`Error::BadMagic`], [`Error::Truncated`], [`Error::CountTooLarge`],
/// [`Error::InvalidUtf8`] and [`Error::TooDeep`], each with the byte offset or level path.
pub fn read_binary_checkpoint(bytes: &[u8]) -> Result<Checkpoint> {
    let mut cursor = Cursor::new(bytes);
    let magic = cursor.u32(|| "binary snapshot magic (u32)".to_owned())?;
    if magic != SNAPSHOT_MAGIC {
        return Err(Error::BadMagic {
            what: "binary snapshot",
            expected: SNAPSHOT_MAGIC,
            found: magic,
        });
    }
    let from_s = cursor.i64(|| "from (i64)".to_owned())?;
    let to_s = cursor.i64(|| "to (i64)".to_owned())?;
    let host = read_level(&mut cursor, "", 1)?;
    Ok(Checkpoint { from_s, to_s, host })
}

/// Reads one Level at `depth` (the host is 1) whose path below the host is `path`.
fn read_level(cursor: &mut Cursor<'_>, path: &str, depth: usize) -> Result<Level> {
    if depth > LEVEL_DEPTH_MAX {
        return Err(Error::TooDeep {
            level: echo(path),
            depth_max: LEVEL_DEPTH_MAX,
        });
    }

    let count_offset = cursor.offset();
    let num_metrics = cursor.u32(|| format!("num_metrics (u32) of {}", level_label(path)))?;
    cursor.check_count(
        u64::from(num_metrics),
        METRIC_BYTES_MIN,
        count_offset,
        || format!("num_metrics of {}", level_label(path)),
    )?;
    // NOTE: a map, not a Vec: a repeated name keeps its last entry, as in cc-metric-store's
    // Go map, and the result comes out sorted whatever order the writer's map iteration had.
    let mut metrics = BTreeMap::new();
    for _ in 0..num_metrics {
        let metric = read_metric(cursor, path)?;
        metrics.insert(metric.name.clone(), metric);
    }

    let count_offset = cursor.offset();
    let num_children = cursor.u32(|| format!("num_children (u32) of {}", level_label(path)))?;
    cursor.check_count(
        u64::from(num_children),
        CHILD_BYTES_MIN,
        count_offset,
        || format!("num_children of {}", level_label(path)),
    )?;
    let mut children = BTreeMap::new();
    for _ in 0..num_children {
        let name_len = cursor.u16(|| format!("child name_len (u16) in {}", level_label(path)))?;
        let name = cursor.str(usize::from(name_len), || {
            format!("child name in {}", level_label(path))
        })?;
        let child = read_level(cursor, &child_path(path, name), depth + 1)?;
        children.insert(name.to_owned(), child);
    }

    Ok(Level {
        metrics: metrics.into_values().collect(),
        children: children.into_iter().collect(),
    })
}

/// Reads one metric entry of the level at `path`.
fn read_metric(cursor: &mut Cursor<'_>, path: &str) -> Result<MetricData> {
    let name_len = cursor.u16(|| format!("metric name_len (u16) in {}", level_label(path)))?;
    let name = cursor.str(usize::from(name_len), || {
        format!("metric name in {}", level_label(path))
    })?;
    let what = |field: &str| {
        format!(
            "{field} of metric {:?} in {}",
            echo(name),
            level_label(path)
        )
    };
    let frequency_s = cursor.i64(|| what("frequency (i64)"))?;
    let start_s = cursor.i64(|| what("start (i64)"))?;
    let count_offset = cursor.offset();
    let num_values = cursor.u32(|| what("num_values (u32)"))?;
    cursor.check_count(u64::from(num_values), VALUE_BYTES, count_offset, || {
        what("num_values")
    })?;
    // The check above guarantees the take succeeds; it stays fallible rather than indexing.
    let raw = cursor.take((num_values as usize).saturating_mul(4), || what("values"))?;
    let (chunks, rest) = raw.as_chunks::<4>();
    debug_assert!(rest.is_empty());
    let values = chunks
        .iter()
        .map(|chunk| f32::from_le_bytes(*chunk))
        .collect();
    Ok(MetricData {
        name: name.to_owned(),
        frequency_s,
        start_s,
        values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_deep_reports_the_level_path() {
        // Goal: a chain of single children deeper than the limit fails with the path of the
        // first level past it, not a stack overflow. Each level is "0 metrics, 1 child 'x'".
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&SNAPSHOT_MAGIC.to_le_bytes());
        bytes.extend_from_slice(&[0; 16]);
        for _ in 0..10_000 {
            bytes.extend_from_slice(&0u32.to_le_bytes());
            bytes.extend_from_slice(&1u32.to_le_bytes());
            bytes.extend_from_slice(&1u16.to_le_bytes());
            bytes.push(b'x');
        }
        let error = read_binary_checkpoint(&bytes).unwrap_err();
        let Error::TooDeep { level, depth_max } = error else {
            panic!("expected TooDeep, got {error:?}");
        };
        assert_eq!(depth_max, 16);
        assert_eq!(level, vec!["x"; 16].join("/"));
    }
}
