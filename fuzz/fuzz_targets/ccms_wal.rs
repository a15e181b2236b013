//! cc-metric-store `current.wal` decoding (`strata_ccms::read_wal`). Input: first byte even =
//! the file as is; odd = the rest are record payloads (`strata_fuzz::payloads`) framed with
//! magics, lengths and correct CRCs, so that mutations reach the payload decoder. Nothing may
//! panic; framed records are read up to the first bad payload, never more than there are.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        let _ = strata_ccms::read_wal(rest);
        return;
    }
    let payloads = strata_fuzz::payloads(rest);
    let contents = strata_ccms::read_wal(&strata_fuzz::ccms_wal(&payloads))
        .unwrap_or_else(|e| panic!("a framed file has the right magic: {e}"));
    assert!(contents.records.len() <= payloads.len());
    if contents.end == strata_ccms::WalEnd::Clean {
        assert_eq!(contents.records.len(), payloads.len());
    }
});
