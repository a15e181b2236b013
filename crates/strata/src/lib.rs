//! The configuration loader of the `strata` binary, as a library so that the fuzz targets
//! (`fuzz/`, `scripts/fuzz.sh`) can call it; the binary (`main.rs`) is everything else.

pub mod config;
