//! Snapshot decoding (`strata_wal::snapshot::read_pack`, versions 1–3). Input: first byte
//! even = the pack file as is; odd = byte 1 picks the version (1–3) and the rest are host
//! payloads (`strata_fuzz::payloads`) framed with correct lengths, CRCs and end marker, so
//! that mutations reach the host decoders. Nothing may panic, and a pack yields at most the
//! hosts there are.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

fn path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| strata_fuzz::scratch_dir().join("000001.snap"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (bytes, hosts) = if mode % 2 == 0 {
        (rest.to_vec(), None)
    } else {
        let Some((&version, rest)) = rest.split_first() else {
            return;
        };
        let payloads = strata_fuzz::payloads(rest);
        let version = 1 + u32::from(version % 3);
        let count = if version == 1 { 1 } else { payloads.len() };
        (strata_fuzz::snapshot_pack(version, &payloads), Some(count))
    };
    std::fs::write(path(), &bytes).unwrap_or_else(|e| panic!("{:?}: {e}", path()));
    let mut seen = 0;
    let read = strata_wal::snapshot::read_pack(path(), 1, |_| seen += 1);
    if let (Ok(read), Some(hosts)) = (read, hosts) {
        assert_eq!(read, seen, "read_pack counts the hosts it hands out");
        assert!(read <= hosts, "{read} hosts from {hosts} entries");
    }
});
