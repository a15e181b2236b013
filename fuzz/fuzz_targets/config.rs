//! The configuration loader (`strata::config::Config::from_json`): cc-metric-store v1.5's
//! sectioned file and its legacy flat format, which is converted first. Nothing may panic.
//! `<name>-file` keys name files relative to the origin; the origin is a directory of this
//! process with no files in it, so they fail to load (as a missing file must, cleanly).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;
use strata::config::Config;

fn origin() -> &'static PathBuf {
    static ORIGIN: OnceLock<PathBuf> = OnceLock::new();
    ORIGIN.get_or_init(|| strata_fuzz::scratch_dir().join("config.json"))
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Config::from_json(text, origin());
    }
});
