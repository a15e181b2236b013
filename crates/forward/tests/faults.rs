//! The delivery policy against a fault-injecting receiver on loopback: every test scripts
//! the receiver's answers, delivers a batch through a real `Sender` (real HTTP, real
//! encoding), and checks what the receiver stored, what was dropped and counted, and what
//! went to the dead-letter file.

mod support;

use std::time::{Duration, Instant};

use strata_forward::config::Protocol;
use strata_forward::deliver::{Cancelled, POISON_ATTEMPTS_MAX, PROBE_METRIC};
use strata_forward::metrics::reason;
use support::{
    Got, Harness, Received, Receiver, Reply, by_series, config, delivered, fail_first, protocols,
    refuse_value, samples, without,
};

const T0: i64 = 1_700_000_000_000;

fn all(sample_list: &[strata_forward::proto::OutSample]) -> Vec<Got> {
    sample_list.iter().map(Got::of).collect()
}

/// Retryable 500s are retried with the same encoded body and `Retry-Attempt: n` until the
/// receiver takes the batch; nothing is dropped.
#[tokio::test]
async fn retries_5xx_with_the_same_body_until_written() {
    let receiver = Receiver::start(fail_first(3, 500)).await;
    let h = Harness::new(&config(&receiver.url()));
    let batch = samples(100, 10, T0);
    assert_eq!(h.deliver(&batch).await, delivered(100, 0));
    assert_eq!(by_series(&receiver.stored()), by_series(&all(&batch)));
    let requests = receiver.requests();
    assert_eq!(requests.len(), 4);
    let attempts: Vec<Option<&str>> = requests.iter().map(|r| r.header("retry-attempt")).collect();
    assert_eq!(attempts, [None, Some("1"), Some("2"), Some("3")]);
    assert!(requests.iter().all(|r| r.body == requests[0].body));
    let first = &requests[0];
    assert_eq!(first.header("content-encoding"), Some("snappy"));
    assert_eq!(first.header("content-type"), Some("application/x-protobuf"));
    assert_eq!(
        first.header("x-prometheus-remote-write-version"),
        Some("0.1.0")
    );
    assert!(
        first
            .header("user-agent")
            .is_some_and(|ua| ua.starts_with("Strata/"))
    );
    assert_eq!(h.endpoint.samples_retried.get(), 300);
    assert_eq!(h.endpoint.samples.get(), 400);
    assert_eq!(h.endpoint.samples_sent.get(), 100);
    assert!(h.sender.last_error().is_some_and(|e| e.contains("500")));
}

/// A 429's `Retry-After` replaces the backoff (here 1 s against a 5 ms backoff), and 429s
/// never count towards poison: after more 429s than the poison threshold nothing was
/// probed, split or dropped.
#[tokio::test]
async fn honours_retry_after_and_429_is_not_poison() {
    let throttled = POISON_ATTEMPTS_MAX as usize + 2;
    let receiver = Receiver::start(move |i, _| match i {
        0 => Reply::Answer {
            status: 429,
            headers: vec![("retry-after", "1".to_string())],
            store: false,
        },
        i if i <= throttled => Reply::status(429, false),
        _ => Reply::ok(),
    })
    .await;
    let mut endpoint = config(&receiver.url());
    // Retry-After is capped at 10 × max-backoff: leave room for the 1 s.
    endpoint.queue.max_backoff = Duration::from_millis(200);
    endpoint.queue.min_backoff = Duration::from_millis(1);
    let h = Harness::new(&endpoint);
    let batch = samples(20, 5, T0);
    let started = Instant::now();
    assert_eq!(h.deliver(&batch).await, delivered(20, 0));
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let requests = receiver.requests();
    assert_eq!(requests.len(), throttled + 2);
    assert!(
        requests.iter().all(|r| r.samples.len() == 20),
        "no probe, no split"
    );
    assert_eq!(h.bisections(), 0);
    assert_eq!(by_series(&receiver.stored()), by_series(&all(&batch)));
}

/// With `retry-on-http-429: false` a 429 drops the batch, counted as throttled.
#[tokio::test]
async fn drops_on_429_when_told_not_to_retry() {
    let receiver = Receiver::start(|_, _| Reply::status(429, false)).await;
    let mut endpoint = config(&receiver.url());
    endpoint.queue.retry_on_http_429 = false;
    let h = Harness::new(&endpoint);
    assert_eq!(h.deliver(&samples(10, 2, T0)).await, delivered(0, 10));
    assert_eq!(h.dropped(reason::THROTTLED), 10);
    assert_eq!(receiver.requests().len(), 1);
}

/// A rollback receiver (Prometheus 1.0: one bad sample fails the whole request, nothing
/// stored) answering 400 or 409: bisection isolates the one poison sample, which alone is
/// dropped, counted and dead-lettered; every other sample arrives, in per-series order.
#[tokio::test]
async fn rejected_sample_is_isolated_by_bisection() {
    for status in [400, 409] {
        let poison = 137.0;
        let receiver = Receiver::start(refuse_value(poison, status)).await;
        let h = Harness::new(&config(&receiver.url()));
        let batch = samples(200, 10, T0);
        assert_eq!(h.deliver(&batch).await, delivered(199, 1));
        let expected = without(&batch, poison);
        assert_eq!(by_series(&receiver.stored()), by_series(&expected));
        assert_eq!(receiver.stored().len(), 199);
        assert_eq!(h.dropped(reason::REJECTED), 1);
        assert_eq!(h.endpoint.dead_lettered_samples.get(), 1);
        // One split per level down to the single sample: 7 or 8 levels for 200 samples.
        assert!((7..=8).contains(&h.bisections()), "{}", h.bisections());
        let dead = h.dead_letter();
        let lines: Vec<&str> = dead.lines().collect();
        assert_eq!(lines.len(), 2, "{dead}");
        assert!(
            lines[0].starts_with(&format!("# reason: rejected (HTTP {status})")),
            "{dead}"
        );
        assert!(lines[0].contains(&format!("scripted {status}")), "{dead}");
        assert_eq!(
            lines[1],
            format!(
                "metric_1,cluster=fritz,hostname=h0007 value=137 {}",
                (T0 + 13_000) * 1_000_000
            )
        );
    }
}

/// 413 splits a batch until the receiver takes it; a single sample still too large is
/// dropped as too_large and dead-lettered.
#[tokio::test]
async fn too_large_splits_and_drops_only_a_single_oversized_sample() {
    let receiver = Receiver::start(|_, r| {
        if r.samples.len() > 16 || r.contains_value(42.0) {
            Reply::status(413, false)
        } else {
            Reply::ok()
        }
    })
    .await;
    let h = Harness::new(&config(&receiver.url()));
    let batch = samples(100, 7, T0);
    assert_eq!(h.deliver(&batch).await, delivered(99, 1));
    assert_eq!(receiver.stored().len(), 99);
    assert!(!receiver.stored().iter().any(|s| s.value == 42.0));
    assert_eq!(h.dropped(reason::TOO_LARGE), 1);
    assert!(h.dead_letter().contains("# reason: too_large (HTTP 413)"));
    let expected = without(&batch, 42.0);
    assert_eq!(by_series(&receiver.stored()), by_series(&expected));

    // The sender learned the limit: the next batch goes out in requests the receiver takes,
    // without a refused one first.
    let before = receiver.requests().len();
    let mut next = samples(100, 7, T0 + 3_600_000);
    for sample in &mut next {
        sample.value += 1000.0; // no 42 this time
    }
    assert_eq!(h.deliver(&next).await, delivered(100, 0));
    let sizes: Vec<usize> = receiver.requests()[before..]
        .iter()
        .map(|r| r.samples.len())
        .collect();
    assert!(sizes.iter().all(|n| *n <= 16), "{sizes:?}");
    assert_eq!(sizes.iter().sum::<usize>(), 100);
}

/// A sample the receiver answers 500 for, every time (Prometheus 2.42 and duplicate label
/// names): after POISON_ATTEMPTS_MAX failures a probe sample is stored, the batch is
/// bisected, and only the poison sample is dropped (poison) and dead-lettered.
#[tokio::test]
async fn poison_5xx_sample_is_isolated_and_dead_lettered() {
    let poison = 77.0;
    let receiver = Receiver::start(refuse_value(poison, 500)).await;
    let mut endpoint = config(&receiver.url());
    endpoint
        .external_labels
        .insert("site".to_string(), "fau".to_string());
    let h = Harness::new(&endpoint);
    let batch = samples(100, 10, T0);
    assert_eq!(h.deliver(&batch).await, delivered(99, 1));
    assert_eq!(
        by_series(&receiver.stored()),
        by_series(&without(&batch, poison))
    );
    assert_eq!(h.dropped(reason::POISON), 1);
    assert_eq!(h.endpoint.dead_lettered_samples.get(), 1);
    assert!(
        h.dead_letter().contains("# reason: poison: HTTP 500"),
        "{}",
        h.dead_letter()
    );
    // One probe per bisection level (7 for 100 samples) and one before the drop.
    assert_eq!(receiver.probes(), 8);
    let probes: Vec<Received> = receiver
        .requests()
        .into_iter()
        .filter(Received::is_probe)
        .collect();
    let labels = &probes[0].samples[0].labels;
    assert_eq!(
        labels,
        &[
            ("__name__".to_string(), PROBE_METRIC.to_string()),
            ("site".to_string(), "fau".to_string())
        ]
    );
    let times: Vec<i64> = probes.iter().map(|p| p.samples[0].timestamp_ms).collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
}

/// A receiver failing every write is down, not poisoned, even when it answers an empty
/// request 2xx without touching storage (as a Cortex or Mimir distributor does): the
/// probe is a real sample and fails too, so the batch keeps retrying whole, past many
/// poison thresholds, and arrives complete once the receiver is back.
#[tokio::test]
async fn an_outage_never_drops() {
    let failing = 5 * POISON_ATTEMPTS_MAX as usize;
    let receiver = Receiver::start(move |i, r| {
        if r.samples.is_empty() {
            Reply::ok()
        } else if i < failing {
            Reply::status(503, false)
        } else {
            Reply::ok()
        }
    })
    .await;
    let h = Harness::new(&config(&receiver.url()));
    let batch = samples(50, 5, T0);
    assert_eq!(h.deliver(&batch).await, delivered(50, 0));
    assert_eq!(by_series(&receiver.stored()), by_series(&all(&batch)));
    assert_eq!(h.bisections(), 0);
    assert!(receiver.probes() >= 4, "{}", receiver.probes());
    assert!(h.dead_letter().is_empty());
}

/// A receiver that refuses connections (nothing listening) is retried, never dropped.
#[tokio::test]
async fn connection_refused_retries_until_cancelled() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let h = Harness::new(&config(&format!("http://127.0.0.1:{port}/api/v1/write")));
    let batch = samples(10, 2, T0);
    let cancel = h.cancel.subscribe();
    let delivery = h.sender.deliver(&batch, &cancel);
    let stop = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        h.cancel.send_replace(true);
    };
    let (result, ()) = tokio::join!(delivery, stop);
    assert_eq!(result, Err(Cancelled));
    assert_eq!(h.dropped(reason::POISON), 0);
    assert!(
        h.sender.last_error().is_some_and(|e| e.contains("connect")),
        "{:?}",
        h.sender.last_error()
    );
}

/// 401 (and 403/404) is retried with the long backoff and never dropped: once the
/// operator fixes the credentials the batch arrives.
#[tokio::test]
async fn unauthorized_retries_until_fixed() {
    let receiver = Receiver::start(|i, _| match i {
        0 => Reply::status(401, false),
        1 => Reply::status(403, false),
        2 => Reply::status(404, false),
        _ => Reply::ok(),
    })
    .await;
    let mut h = Harness::new(&config(&receiver.url()));
    h.sender
        .set_misconfigured_backoff(Duration::from_millis(20), Duration::from_millis(40));
    let batch = samples(30, 3, T0);
    let started = Instant::now();
    assert_eq!(h.deliver(&batch).await, delivered(30, 0));
    // Three long sleeps of at least half of 20, 40, 40 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(50),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(by_series(&receiver.stored()), by_series(&all(&batch)));
    assert_eq!(h.bisections(), 0);
    assert!(h.sender.last_error().is_some_and(|e| e.contains("404")));
}

/// The receiver stores a request and drops the connection before answering (a lost 2xx):
/// the batch is resent, so it arrives twice, and both copies are the only duplicates.
#[tokio::test]
async fn a_lost_answer_is_resent() {
    let receiver = Receiver::start(|i, _| {
        if i == 0 {
            Reply::StoreThenDrop
        } else {
            Reply::ok()
        }
    })
    .await;
    let h = Harness::new(&config(&receiver.url()));
    let batch = samples(40, 4, T0);
    assert_eq!(h.deliver(&batch).await, delivered(40, 0));
    let mut twice = all(&batch);
    twice.extend(all(&batch));
    assert_eq!(by_series(&receiver.stored()), by_series(&twice));
}

/// A receiver that stalls past the per-attempt timeout is retried.
#[tokio::test]
async fn a_stall_beyond_the_timeout_is_retried() {
    let receiver = Receiver::start(|i, _| {
        if i == 0 {
            Reply::Stall(Duration::from_secs(3))
        } else {
            Reply::ok()
        }
    })
    .await;
    let mut endpoint = config(&receiver.url());
    endpoint.timeout = Duration::from_millis(300);
    let h = Harness::new(&endpoint);
    let batch = samples(10, 2, T0);
    assert_eq!(h.deliver(&batch).await, delivered(10, 0));
    assert_eq!(by_series(&receiver.stored()), by_series(&all(&batch)));
    assert!(
        h.sender
            .last_error()
            .is_some_and(|e| e.contains("timed out")),
        "{:?}",
        h.sender.last_error()
    );
}

/// A 1.x receiver answers a 2.0 request with 204 and no written counts (it decoded an
/// empty 1.0 request, as Prometheus 2.42 and VictoriaMetrics 1.79 do): the endpoint falls
/// back to 1.0 for good and resends.
#[tokio::test]
async fn v2_falls_back_to_v1_on_2xx_without_written_counts() {
    // A 1.x receiver reads a 2.0 body as an empty 1.0 request: it stores nothing of it.
    let receiver = Receiver::start(|_, r| Reply::status(204, !r.v2)).await;
    let mut endpoint = config(&receiver.url());
    endpoint.protocol = Protocol::V2;
    let h = Harness::new(&endpoint);
    assert_eq!(h.sender.protocol(), Protocol::V2);
    let batch = samples(30, 3, T0);
    assert_eq!(h.deliver(&batch).await, delivered(30, 0));
    assert_eq!(h.deliver(&batch).await, delivered(30, 0));
    assert_eq!(h.sender.protocol(), Protocol::V1);
    assert_eq!(
        protocols(&receiver.requests()),
        [Protocol::V2, Protocol::V1, Protocol::V1]
    );
    let mut twice = all(&batch);
    twice.extend(all(&batch));
    assert_eq!(by_series(&receiver.stored()), by_series(&twice));
    assert_eq!(h.endpoint.protocol_fallbacks.get(), 1);
}

/// 415 to a 2.0 request also falls back; a 2.0 receiver that sends written counts keeps
/// 2.0 and decodes the symbol table to the same samples.
#[tokio::test]
async fn v2_receiver_keeps_v2_and_415_falls_back() {
    let receiver = Receiver::start(|_, r| {
        assert_eq!(
            r.header("content-type"),
            Some("application/x-protobuf;proto=io.prometheus.write.v2.Request")
        );
        assert_eq!(r.header("x-prometheus-remote-write-version"), Some("2.0.0"));
        Reply::Answer {
            status: 204,
            headers: vec![(
                "x-prometheus-remote-write-samples-written",
                r.samples.len().to_string(),
            )],
            store: true,
        }
    })
    .await;
    let mut endpoint = config(&receiver.url());
    endpoint.protocol = Protocol::V2;
    let h = Harness::new(&endpoint);
    let batch = samples(60, 6, T0);
    assert_eq!(h.deliver(&batch).await, delivered(60, 0));
    assert_eq!(h.sender.protocol(), Protocol::V2);
    assert_eq!(by_series(&receiver.stored()), by_series(&all(&batch)));

    let refusing = Receiver::start(|_, r| {
        if r.v2 {
            Reply::status(415, false)
        } else {
            Reply::ok()
        }
    })
    .await;
    let mut endpoint = config(&refusing.url());
    endpoint.protocol = Protocol::V2;
    let h = Harness::new(&endpoint);
    assert_eq!(h.deliver(&batch).await, delivered(60, 0));
    assert_eq!(h.sender.protocol(), Protocol::V1);
    assert_eq!(by_series(&refusing.stored()), by_series(&all(&batch)));
}

/// Basic auth and custom headers reach the receiver.
#[tokio::test]
async fn sends_credentials_and_custom_headers() {
    let receiver = Receiver::start(|_, _| Reply::ok()).await;
    let mut endpoint = config(&receiver.url());
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("pw");
    std::fs::write(&password, "s3cret\n").unwrap();
    endpoint.basic_auth = Some(strata_forward::config::BasicAuth {
        username: "strata".to_string(),
        password_file: password,
    });
    endpoint
        .headers
        .insert("X-Scope-OrgID".to_string(), "hpc".to_string());
    let h = Harness::new(&endpoint);
    h.deliver(&samples(1, 1, T0)).await;
    let request = &receiver.requests()[0];
    // "strata:s3cret" in base64: the trailing newline of the file is not part of it.
    assert_eq!(
        request.header("authorization"),
        Some("Basic c3RyYXRhOnMzY3JldA==")
    );
    assert_eq!(request.header("x-scope-orgid"), Some("hpc"));
}

/// A cancel during the backoff sleep returns at once, claiming nothing.
#[tokio::test]
async fn cancel_interrupts_a_retrying_batch() {
    let receiver = Receiver::start(|_, _| Reply::status(503, false)).await;
    let mut endpoint = config(&receiver.url());
    endpoint.queue.min_backoff = Duration::from_secs(60);
    endpoint.queue.max_backoff = Duration::from_secs(60);
    let h = Harness::new(&endpoint);
    let batch = samples(10, 2, T0);
    let cancel = h.cancel.subscribe();
    let started = Instant::now();
    let (result, ()) = tokio::join!(h.sender.deliver(&batch, &cancel), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        h.cancel.send_replace(true);
    });
    assert_eq!(result, Err(Cancelled));
    assert!(started.elapsed() < Duration::from_secs(30));
    // Already cancelled: returns before sending anything.
    let before = receiver.requests().len();
    assert_eq!(h.sender.deliver(&batch, &cancel).await, Err(Cancelled));
    assert_eq!(receiver.requests().len(), before);
}

/// An empty batch sends nothing; a cancel channel whose sender is gone never cancels (the
/// owner's explicit `true` is the only cancel).
#[tokio::test]
async fn empty_batches_and_closed_cancel_channels() {
    let receiver = Receiver::start(fail_first(2, 503)).await;
    let h = Harness::new(&config(&receiver.url()));
    let (sender, cancel) = tokio::sync::watch::channel(false);
    assert_eq!(h.sender.deliver(&[], &cancel).await, Ok(delivered(0, 0)));
    assert!(receiver.requests().is_empty());
    drop(sender);
    let batch = samples(10, 2, T0);
    assert_eq!(
        h.sender.deliver(&batch, &cancel).await,
        Ok(delivered(10, 0))
    );
    assert_eq!(by_series(&receiver.stored()), by_series(&all(&batch)));
}

/// "In a row" means it: a 401 between 5xx answers breaks the row (the receiver refused
/// everyone, which says nothing against this batch), so 5 + 5 failures around it never reach
/// the poison threshold: no probe, no split.
#[tokio::test]
async fn a_misconfigured_answer_breaks_the_row_of_failures() {
    let mut real = 0;
    let receiver = Receiver::start(move |_, r| {
        if r.is_probe() {
            return Reply::ok();
        }
        real += 1;
        match real {
            1..=5 | 7..=11 => Reply::status(500, false),
            6 => Reply::status(401, false),
            _ => Reply::ok(),
        }
    })
    .await;
    let mut h = Harness::new(&config(&receiver.url()));
    h.sender
        .set_misconfigured_backoff(Duration::from_millis(1), Duration::from_millis(2));
    let batch = samples(20, 4, T0);
    assert_eq!(h.deliver(&batch).await, delivered(20, 0));
    assert_eq!(receiver.probes(), 0);
    assert_eq!(h.bisections(), 0);
    assert_eq!(by_series(&receiver.stored()), by_series(&all(&batch)));
}

/// A 2.0 receiver that ingests partially (Prometheus's 2.0 path, Cortex, Mimir) answers 400
/// with the count it wrote: the valid samples are stored, so the batch is done without
/// bisecting (resending them would only be refused as out of order), and the refused one is
/// counted as rejected.
#[tokio::test]
async fn a_v2_partial_write_is_not_bisected() {
    let poison = 13.0;
    let receiver = Receiver::start(move |_, r| {
        let refused = r.samples.iter().filter(|s| s.value == poison).count();
        let written = (r.samples.len() - refused).to_string();
        Reply::Partial {
            status: if refused > 0 { 400 } else { 204 },
            headers: vec![("x-prometheus-remote-write-samples-written", written)],
            refused_value: poison,
        }
    })
    .await;
    let mut endpoint = config(&receiver.url());
    endpoint.protocol = Protocol::V2;
    let h = Harness::new(&endpoint);
    let batch = samples(50, 5, T0);
    assert_eq!(h.deliver(&batch).await, delivered(49, 1));
    assert_eq!(receiver.requests().len(), 1);
    assert_eq!(h.bisections(), 0);
    assert_eq!(h.dropped(reason::REJECTED), 1);
    assert_eq!(h.endpoint.samples_sent.get(), 49);
    assert_eq!(h.sender.protocol(), Protocol::V2);
    assert_eq!(
        by_series(&receiver.stored()),
        by_series(&without(&batch, poison))
    );
}
