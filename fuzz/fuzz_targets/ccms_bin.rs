//! cc-metric-store binary snapshot decoding (`strata_ccms::read_binary_checkpoint`): nothing
//! may panic, and no count in the file may make it allocate more than the file could hold
//! (libFuzzer's `-rss_limit_mb` and `-malloc_limit_mb` catch that).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = strata_ccms::read_binary_checkpoint(data);
});
