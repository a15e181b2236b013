//! A query request body (`/api/query`'s JSON) through the request parser, the planner with its
//! limits, the store's read path and the response writer
//! (`strata_server::query::answer`), against a store holding a few hosts at every level
//! cc-metric-store knows. Nothing may panic, and whatever is answered must be valid JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use strata::config::LimitsSection;
use strata_server::ServerConfig;
use strata_server::ingest::{IngestLimits, LineDecoder, Precision};
use strata_store::{Store, StoreConfig};

/// The store's clock: the data ends here.
const NOW_S: i64 = 1_700_000_000;

fn setup() -> &'static (Store, ServerConfig) {
    static SETUP: OnceLock<(Store, ServerConfig)> = OnceLock::new();
    SETUP.get_or_init(|| {
        let store = Store::new(StoreConfig::auto(60));
        let mut body = String::new();
        for minute in 0..120 {
            let t = NOW_S - 7200 + minute * 60;
            for host in ["n1", "n2"] {
                body += &format!("cpu_load,cluster=c,hostname={host} value={minute}.5 {t}\n");
                for thread in 0..4 {
                    body += &format!(
                        "flops,cluster=c,hostname={host},type=hwthread,type-id={thread} value={} {t}\n",
                        minute * thread
                    );
                }
                for socket in 0..2 {
                    for core in 0..2 {
                        body += &format!(
                            "mem_bw,cluster=c,hostname={host},type=socket,type-id={socket},\
                             stype=core,stype-id={core} value=-{minute}e3 {t}\n"
                        );
                    }
                }
            }
        }
        let limits = LimitsSection::default();
        let line = strata_lineproto::Limits::default();
        let mut decoder = LineDecoder::new("c", Precision::Auto, NOW_S, line.clone());
        decoder.feed(body.as_bytes());
        decoder.finish();
        assert_eq!(decoder.rejected_total(), 0, "the setup's lines are valid");
        store.write(&decoder.batch, NOW_S);
        let config = ServerConfig {
            jwt_public_key: None,
            jwt_roles: None,
            ingest: IngestLimits {
                body_bytes_max: limits.body_bytes_max,
                line,
                request_timeout: limits.request_timeout,
            },
            query_series_max: limits.query_series_max,
            query_points_max: limits.query_points_max,
            concurrent_queries: 1,
            request_body_bytes_max: 1 << 20,
            resampler: Default::default(),
        };
        (store, config)
    })
}

fuzz_target!(|data: &[u8]| {
    let (store, config) = setup();
    if let Ok(response) = strata_server::query::answer(store, config, data) {
        if let Err(error) = serde_json::from_slice::<serde_json::Value>(&response) {
            panic!(
                "answer is not JSON ({error}): {}",
                String::from_utf8_lossy(&response)
            );
        }
    }
});
