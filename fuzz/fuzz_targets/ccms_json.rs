//! cc-metric-store JSON snapshot decoding (`strata_ccms::read_json_checkpoint`): nothing may
//! panic, however deep or malformed the JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = strata_ccms::read_json_checkpoint(data);
});
