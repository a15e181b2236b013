//! WAL segment decoding (`strata_wal::replay`, the recovery reader, over one segment file).
//! Input: first byte even = the segment file as is; odd = byte 1 picks the version (1–3),
//! byte 2 the first sequence number, the rest are record payloads (`strata_fuzz::payloads`)
//! framed with correct lengths and CRCs, so that mutations reach the payload decoder.
//! Nothing may panic, and a replay reads at most the records there are.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

fn directory() -> &'static PathBuf {
    static DIRECTORY: OnceLock<PathBuf> = OnceLock::new();
    DIRECTORY.get_or_init(|| {
        let directory = strata_fuzz::scratch_dir().join("wal");
        std::fs::create_dir_all(&directory).unwrap_or_else(|e| panic!("{directory:?}: {e}"));
        directory
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (bytes, records) = if mode % 2 == 0 {
        (rest.to_vec(), None)
    } else {
        let [version, first_sequence, rest @ ..] = rest else {
            return;
        };
        let payloads = strata_fuzz::payloads(rest);
        let version = 1 + u32::from(version % 3);
        let segment = strata_fuzz::wal_segment(version, 1, u64::from(*first_sequence), &payloads);
        (segment, Some(payloads.len() as u64))
    };
    let path = directory().join(strata_wal::segment_file_name(1));
    std::fs::write(&path, &bytes).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    if let Ok(report) = strata_wal::replay(directory(), 1, |_, _| {}) {
        if let Some(records) = records {
            assert!(
                report.records <= records,
                "{report:?} from {records} records"
            );
        }
    }
});
