//! Hosts as blocks for incremental snapshots ([`Store::export_host_blocks`],
//! [`Store::load_host_blocks`]): bit-exact round trips, references to blocks a live
//! generation holds, and blocks that cannot be loaded.

// Test code: a failed expectation is a test failure.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::HashMap;
use strata_store::{
    BlockSeries, HostBlocks, LevelImage, LevelName, Store, StoreConfig, StoredBlock, WriteBatch,
};

const NOW: i64 = 10_000_000;

fn store() -> Store {
    let mut config = StoreConfig::auto(10);
    config.retention_s = NOW;
    Store::new(config)
}

/// `count` slots of a few series on host `h`, from slot `first` on (10 s apart).
fn write(store: &Store, first: i64, count: i64) {
    let mut batch = WriteBatch::new();
    for i in first..first + count {
        let t = 1_000 + i * 10;
        batch.push(
            "c",
            "h",
            [LevelName::NONE; 2],
            "load",
            t,
            (i % 7) as f32 * 0.25,
        );
        let socket = [LevelName::new("socket0", ""), LevelName::NONE];
        batch.push("c", "h", socket, "mem_bw", t, 1.0e6 + i as f32);
    }
    store.write(&batch, NOW);
}

/// Debug renderings also compare NaN slots.
fn same(a: &Store, b: &Store) -> bool {
    format!("{:?}", a.export_host("c", "h")) == format!("{:?}", b.export_host("c", "h"))
}

/// A block's key: metric (the metrics here are on one level each), buffer start, index.
type Key = (String, i64, usize);

/// Every block below `level` with its key.
fn each_keyed(level: &mut LevelImage<BlockSeries>, each: &mut dyn FnMut(Key, &mut StoredBlock)) {
    for series in &mut level.series {
        for buffer in &mut series.buffers {
            for (k, block) in buffer.blocks.iter_mut().enumerate() {
                each((series.metric.clone(), buffer.start_s, k), block);
            }
        }
    }
    for (_, child) in &mut level.children {
        each_keyed(child, each);
    }
}

fn each_block(level: &mut LevelImage<BlockSeries>, each: &mut dyn FnMut(&mut StoredBlock)) {
    each_keyed(level, &mut |_, block| each(block));
}

/// How many blocks are references and how many bytes.
fn census(image: &mut HostBlocks) -> (usize, usize) {
    let (mut references, mut bytes) = (0, 0);
    each_block(&mut image.root, &mut |block| match block {
        StoredBlock::Reference { .. } => references += 1,
        StoredBlock::Bytes { .. } => bytes += 1,
    });
    (references, bytes)
}

/// The blocks of `image` by position, as a snapshot's pack would hold them.
fn blocks_of(image: &mut HostBlocks) -> Vec<StoredBlock> {
    let mut blocks = Vec::new();
    each_block(&mut image.root, &mut |block| blocks.push(block.clone()));
    blocks
}

#[test]
fn a_host_round_trips_bit_exact_through_blocks() {
    let live = store();
    write(&live, 0, 1_300);
    // A late write into a sealed block, a gap, and a second buffer.
    write(&live, 3, 1);
    write(&live, 2_000, 40);
    let image = live.export_host_blocks("c", "h", 7, &|_| false).unwrap();
    let loaded = store();
    let report = loaded.load_host_blocks(image);
    assert_eq!(report.lost_slots, 0);
    assert_eq!(report.series, 2);
    assert!(same(&live, &loaded));
    // Writes go on in the loaded store as in the live one.
    write(&live, 2_040, 300);
    write(&loaded, 2_040, 300);
    assert!(same(&live, &loaded));
}

#[test]
fn blocks_a_live_generation_holds_are_referenced_and_a_changed_one_is_not() {
    let store = store();
    write(&store, 0, 1_000);
    let mut first = store.export_host_blocks("c", "h", 5, &|_| true).unwrap();
    let (references, inline) = census(&mut first);
    assert_eq!(references, 0, "nothing was held before");
    assert!(inline >= 12, "{inline}");
    // Generation 5 is live now: its blocks are referenced, except one a late write changed.
    write(&store, 10, 1);
    let mut second = store.export_host_blocks("c", "h", 6, &|g| g == 5).unwrap();
    let (references, inline) = census(&mut second);
    // Two series of 1000 slots: 7 sealed blocks each; the late write changed one of each.
    assert_eq!((references, inline), (12, 2));
    // A failed generation (6) is not live: what it copied is copied again by the next.
    let mut third = store.export_host_blocks("c", "h", 7, &|g| g == 5).unwrap();
    assert_eq!(census(&mut third), (12, 2));
    let held: Vec<u64> = blocks_of(&mut third)
        .iter()
        .map(|b| match b {
            StoredBlock::Bytes { generation, .. } | StoredBlock::Reference { generation, .. } => {
                *generation
            }
        })
        .collect();
    assert!(held.contains(&7) && held.contains(&5), "{held:?}");
}

#[test]
fn resolved_references_load_as_the_original_and_unresolved_ones_are_counted_lost() {
    let store = store();
    write(&store, 0, 1_000);
    let mut first = store.export_host_blocks("c", "h", 5, &|_| true).unwrap();
    write(&store, 1_000, 50);
    let mut second = store.export_host_blocks("c", "h", 6, &|g| g == 5).unwrap();
    // Resolve by key, as recovery does.
    let mut held = HashMap::new();
    each_keyed(&mut first.root, &mut |key, block| {
        held.insert(key, block.clone());
    });
    let mut resolved = second.clone();
    each_keyed(&mut resolved.root, &mut |key, block| {
        if let StoredBlock::Reference { crc, .. } = *block {
            let found = held[&key].clone();
            if let StoredBlock::Bytes { bytes, .. } = &found {
                assert_eq!(crc32c::crc32c(bytes), crc);
            }
            *block = found;
        }
    });
    let loaded = self::store();
    assert_eq!(loaded.load_host_blocks(resolved).lost_slots, 0);
    assert!(same(&store, &loaded));

    // Unresolved: those blocks' slots are lost, the rest loads.
    let (references, _) = census(&mut second);
    let partial = self::store();
    let report = partial.load_host_blocks(second);
    assert_eq!(report.lost_slots, references * 128);
    let exported = format!("{:?}", partial.export_host("c", "h").unwrap());
    assert!(
        exported.contains("1001049.0"),
        "the newest samples are there"
    );
}

#[test]
fn a_damaged_block_is_lost_alone() {
    let store = store();
    write(&store, 0, 600);
    let mut image = store.export_host_blocks("c", "h", 5, &|_| false).unwrap();
    let mut first = true;
    each_block(&mut image.root, &mut |block| {
        if let StoredBlock::Bytes { bytes, .. } = block
            && std::mem::take(&mut first)
        {
            bytes[0] = 0xFF;
        }
    });
    let loaded = self::store();
    let report = loaded.load_host_blocks(image);
    assert_eq!(report.lost_slots, 128);
    assert_eq!(report.series, 2);
}

/// Blocks whose layout breaks the store's rules (buffers that overlap, a short block before
/// another) are not taken as they are: they are decoded and written value by value, so
/// nothing is lost and nothing is misread.
#[test]
fn blocks_in_an_impossible_layout_are_merged_value_by_value() {
    let store = store();
    write(&store, 0, 1_100);
    let mut image = store.export_host_blocks("c", "h", 5, &|_| false).unwrap();
    let series = &mut image.root.series[0];
    assert!(series.buffers.len() >= 2);
    series.buffers[1].start_s = series.buffers[0].start_s + 10 * 10;
    let loaded = self::store();
    let report = loaded.load_host_blocks(image);
    assert_eq!((report.lost_slots, report.series), (0, 2));
    let exported = loaded.export_host("c", "h").unwrap();
    let runs = &exported.root.series[0].runs;
    assert!(!runs.is_empty());
}
