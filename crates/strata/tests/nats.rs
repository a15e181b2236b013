//! NATS ingest against the real binary and a real nats-server (Debian's 2.9; scripts/test.sh
//! installs it): core subscriptions, queue groups, JetStream, reconnects, authentication and
//! back-pressure (issue 9). Every wait polls with a deadline; nothing sleeps as an assertion.

// Test helpers outside `#[test]` functions panic on purpose, like the tests themselves.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{Server, metric_value, minutes_ago};
use serde_json::{Value, json};
use strata_testkit::{NatsClient, NatsServer, free_port};

/// Longest wait for something NATS ingest should do.
const TIMEOUT: Duration = Duration::from_secs(60);

/// A Strata subscribed through `nats` (the `nats` section) with `subscriptions`; `store`
/// is merged into `metric-store`.
fn strata(nats: Value, subscriptions: Value, store: Value) -> Server {
    let mut metric_store = json!({"nats-subscriptions": subscriptions});
    for (key, value) in store.as_object().unwrap() {
        metric_store[key] = value.clone();
    }
    Server::start_with_config(&json!({"nats": nats, "metric-store": metric_store}))
}

/// A Strata subscribed to `subject` of `nats` with cluster tag `fritz`; `store` as for
/// [`strata`].
fn strata_on(nats: &NatsServer, subject: &str, store: Value) -> Server {
    strata(
        json!({"address": nats.url()}),
        json!([{"subscribe-to": subject, "cluster-tag": "fritz"}]),
        store,
    )
}

/// Polls `check` until it holds; panics with `what` at the deadline.
fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !check() {
        assert!(Instant::now() < deadline, "not within {TIMEOUT:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A `/metrics` value, 0 when the series is absent.
fn metric(server: &Server, series: &str) -> f64 {
    metric_value(&server.metrics(), series).unwrap_or(0.0)
}

fn messages(server: &Server, subscription: &str, result: &str) -> f64 {
    metric(
        server,
        &format!(
            "strata_nats_messages_total{{subscription=\"{subscription}\",result=\"{result}\"}}"
        ),
    )
}

/// The node value of `cpu_load` at `t` for each host in `cluster` (`None`: not stored).
fn values(server: &Server, cluster: &str, hosts: &[String], t: i64) -> Vec<Option<f64>> {
    let queries: Vec<Value> = hosts
        .iter()
        .map(|host| json!({"metric": "cpu_load", "host": host}))
        .collect();
    let response = server.query(&json!({"cluster": cluster, "from": t, "to": t + 60,
                                        "queries": queries}));
    (0..hosts.len())
        .map(|i| {
            let entry = &response["results"][i][0];
            entry["data"]
                .as_array()
                .and_then(|data| data.first())
                .and_then(Value::as_f64)
        })
        .collect()
}

fn line(host: &str, value: f64, t: i64) -> String {
    format!("cpu_load,hostname={host},type=node value={value} {t}\n")
}

/// Once `subject` has a subscriber, publishes one core message of one line (`host` =
/// `value` at `t`) and waits until `server` has stored `stored` messages from it.
fn send_line(
    nats: &NatsServer,
    server: &Server,
    subject: &str,
    (host, value, t): (&str, f64, i64),
    stored: f64,
) {
    nats.wait_for_subscriptions(subject, 1, TIMEOUT);
    nats.client()
        .publish(subject, [line(host, value, t).into_bytes()]);
    wait_until(&format!("{stored} messages of {subject} stored"), || {
        messages(server, subject, "stored") == stored
    });
}

fn hosts(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}{i}")).collect()
}

#[test]
fn publish_and_query_back() {
    // Goal: a core message's lines are stored under the subscription's cluster tag; a bad
    // line in it is rejected and counted while the good ones are kept.
    let nats = NatsServer::start();
    let server = strata_on(&nats, "m.a", json!({}));
    nats.wait_for_subscriptions("m.a", 1, TIMEOUT);
    let t = minutes_ago(10);
    let payload = format!(
        "{}cpu_load,hostname=h1,type=node bogus=1 {t}\n{}",
        line("h1", 1.5, t),
        line("h2", 2.5, t)
    );
    nats.client().publish("m.a", [payload.clone().into_bytes()]);
    wait_until("the partial message is counted", || {
        messages(&server, "m.a", "partial") == 1.0
    });
    let stored = values(&server, "fritz", &hosts("h", 3)[1..], t);
    assert_eq!(stored, [Some(1.5), Some(2.5)]);
    let text = server.metrics();
    assert_eq!(
        metric_value(
            &text,
            "strata_ingest_lines_rejected_total{reason=\"unknown_field\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric_value(&text, "strata_ingest_samples_total"),
        Some(2.0)
    );
    assert_eq!(
        metric_value(&text, "strata_nats_connected{subscription=\"m.a\"}"),
        Some(1.0)
    );
    assert!(
        metric_value(
            &text,
            "strata_nats_received_bytes_total{subscription=\"m.a\"}"
        ) == Some(payload.len() as f64)
    );
    assert!(
        server.log().contains("source=\"nats:m.a\""),
        "{}",
        server.log()
    );
}

#[test]
fn cluster_tag_is_per_subscription() {
    // Goal: with several workers, an untagged line always gets the cluster tag of the
    // subscription it arrived on (cc-metric-store mixes them up), and a `cluster` tag in the
    // line wins over it.
    let nats = NatsServer::start();
    let server = strata(
        json!({"address": nats.url()}),
        json!([{"subscribe-to": "a.x", "cluster-tag": "fritz"},
               {"subscribe-to": "b.x", "cluster-tag": "alex"}]),
        json!({"num-workers": 4}),
    );
    nats.wait_for_subscriptions("a.x", 1, TIMEOUT);
    nats.wait_for_subscriptions("b.x", 1, TIMEOUT);
    let t = minutes_ago(10);
    let (a, b) = (hosts("a", 100), hosts("b", 100));
    let client = nats.client();
    for i in 0..100 {
        client.publish("a.x", [line(&a[i], i as f64, t).into_bytes()]);
        client.publish("b.x", [line(&b[i], i as f64, t).into_bytes()]);
    }
    client.publish(
        "a.x",
        [format!("cpu_load,cluster=x,hostname=tagged,type=node value=7 {t}\n").into_bytes()],
    );
    wait_until("201 messages stored", || {
        messages(&server, "a.x", "stored") + messages(&server, "b.x", "stored") == 201.0
    });
    let expected: Vec<Option<f64>> = (0..100).map(|i| Some(i as f64)).collect();
    assert_eq!(values(&server, "fritz", &a, t), expected);
    assert_eq!(values(&server, "alex", &b, t), expected);
    assert!(values(&server, "alex", &a, t).iter().all(Option::is_none));
    assert!(values(&server, "fritz", &b, t).iter().all(Option::is_none));
    assert_eq!(values(&server, "x", &["tagged".into()], t), [Some(7.0)]);
}

#[test]
fn rejected_lines_are_logged_with_the_subscription_label() {
    // Goal: the `source` of a rejected-line log names the subscription (its label), also
    // when two subscriptions share a subject.
    let nats = NatsServer::start();
    let server = strata(
        json!({"address": nats.url()}),
        json!([{"subscribe-to": "dup", "cluster-tag": "fritz"},
               {"subscribe-to": "dup", "cluster-tag": "alex"}]),
        json!({}),
    );
    nats.wait_for_subscriptions("dup", 2, TIMEOUT);
    nats.client()
        .publish("dup", [b"not line protocol\n".to_vec()]);
    wait_until("both rejected it", || {
        messages(&server, "dup #1", "rejected") + messages(&server, "dup #2", "rejected") == 2.0
    });
    let log = server.log();
    assert!(
        log.contains("source=\"nats:dup #1\"") || log.contains("source=\"nats:dup #2\""),
        "{log}"
    );
}

#[test]
fn bad_message_does_not_stop_subscription() {
    // Goal: garbage, an oversized, an empty and a non-UTF-8 message are each counted and
    // dropped; the subscription goes on and stores the next good message.
    let nats = NatsServer::start();
    let server = strata_on(&nats, "bad", json!({"limits": {"body-size": "1KiB"}}));
    nats.wait_for_subscriptions("bad", 1, TIMEOUT);
    let t = minutes_ago(10);
    let client = nats.client();
    client.publish(
        "bad",
        [
            b"%%% this is not line protocol\n".to_vec(),
            line("big", 1.0, t).repeat(100).into_bytes(),
            Vec::new(),
            vec![0xff, 0xfe, 0x80, b'\n', 0xc3],
            line("good", 4.0, t).into_bytes(),
        ],
    );
    wait_until("the good message is stored", || {
        messages(&server, "bad", "stored") == 1.0
    });
    assert_eq!(messages(&server, "bad", "rejected"), 2.0);
    assert_eq!(messages(&server, "bad", "too_large"), 1.0);
    assert_eq!(messages(&server, "bad", "empty"), 1.0);
    assert_eq!(
        values(&server, "fritz", &["good".into(), "big".into()], t),
        [Some(4.0), None]
    );
    assert_eq!(metric(&server, "strata_ingest_samples_total"), 1.0);
}

/// Two Stratas with `subscription` (on `q.x`, cluster tag `fritz`) on one NATS server: 300
/// messages of one host each are published, and once the two stored `expected` messages
/// between them, says which hosts each holds.
fn spread(subscription: Value, expected: f64) -> [BTreeSet<String>; 2] {
    let nats = NatsServer::start();
    let servers = [(); 2].map(|()| {
        strata(
            json!({"address": nats.url()}),
            json!([subscription.clone()]),
            json!({}),
        )
    });
    nats.wait_for_subscriptions("q.x", 2, TIMEOUT);
    let t = minutes_ago(10);
    let all = hosts("q", 300);
    nats.client().publish(
        "q.x",
        all.iter().map(|host| line(host, 1.0, t).into_bytes()),
    );
    wait_until("every message stored", || {
        servers
            .iter()
            .map(|s| messages(s, "q.x", "stored"))
            .sum::<f64>()
            == expected
    });
    servers.map(|server| {
        let stored = values(&server, "fritz", &all, t);
        all.iter()
            .zip(stored)
            .filter(|(_, value)| value.is_some())
            .map(|(host, _)| host.clone())
            .collect()
    })
}

#[test]
fn queue_group_splits_between_two_stratas() {
    // Goal: two Stratas in one queue group share the messages: each is stored once, by
    // one of them, and both get some.
    let held = spread(
        json!({"subscribe-to": "q.x", "cluster-tag": "fritz", "queue-group": "g"}),
        300.0,
    );
    assert!(held[0].intersection(&held[1]).next().is_none());
    assert_eq!(held[0].union(&held[1]).count(), 300);
    assert!(
        !held[0].is_empty() && !held[1].is_empty(),
        "{} / {}",
        held[0].len(),
        held[1].len()
    );
}

#[test]
fn without_queue_group_both_receive_everything() {
    // Goal (control of the above): without a queue group every Strata stores every message.
    let held = spread(
        json!({"subscribe-to": "q.x", "cluster-tag": "fritz"}),
        600.0,
    );
    assert_eq!(held[0].len(), 300);
    assert_eq!(held[0], held[1]);
}

#[test]
fn nats_down_at_start_then_up() {
    // Goal: Strata starts and serves HTTP while its NATS server is down, says so, and
    // subscribes once the server comes up.
    let mut nats = NatsServer::start();
    nats.stop();
    let server = strata_on(&nats, "late", json!({}));
    let t = minutes_ago(10);
    server.write_ok("fritz", &line("http", 1.0, t));
    wait_until("the failed connect is logged", || {
        server.log().contains("NATS client error")
    });
    assert_eq!(
        metric(&server, "strata_nats_connected{subscription=\"late\"}"),
        0.0
    );
    nats.restart();
    send_line(&nats, &server, "late", ("late", 2.0, t), 1.0);
    assert_eq!(
        values(&server, "fritz", &["http".into(), "late".into()], t),
        [Some(1.0), Some(2.0)]
    );
    assert_eq!(
        metric(&server, "strata_nats_connected{subscription=\"late\"}"),
        1.0
    );
}

#[test]
fn nats_server_restart_resumes_ingest() {
    // Goal: after the NATS server restarts, the client reconnects and re-subscribes by
    // itself, and ingest goes on.
    let mut nats = NatsServer::start();
    let server = strata_on(&nats, "r", json!({}));
    let t = minutes_ago(10);
    send_line(&nats, &server, "r", ("before", 1.0, t), 1.0);
    nats.restart();
    send_line(&nats, &server, "r", ("after", 2.0, t), 2.0);
    assert_eq!(
        values(&server, "fritz", &["before".into(), "after".into()], t),
        [Some(1.0), Some(2.0)]
    );
    let text = server.metrics();
    let event = |event: &str| {
        metric_value(
            &text,
            &format!("strata_nats_events_total{{subscription=\"r\",event=\"{event}\"}}"),
        )
        .unwrap_or(0.0)
    };
    assert!(event("connected") >= 2.0, "{text}");
    assert!(event("disconnected") >= 1.0, "{text}");
    assert!(server.log().contains("NATS disconnected, reconnecting"));
}

#[test]
fn user_password_auth() {
    // Goal: the right user and password ingest; a wrong password is logged (without the
    // password) and retried while HTTP keeps serving.
    let nats = NatsServer::start_with_auth("strata", "right-secret-1");
    let right = strata(
        json!({"address": nats.url(), "username": "strata", "password": common::secret("right-secret-1")}),
        json!([{"subscribe-to": "auth", "cluster-tag": "fritz"}]),
        json!({}),
    );
    let wrong = strata(
        json!({"address": nats.url(), "username": "strata", "password": common::secret("wrong-secret-2")}),
        json!([{"subscribe-to": "auth", "cluster-tag": "fritz"}]),
        json!({}),
    );
    let t = minutes_ago(10);
    send_line(&nats, &right, "auth", ("h", 1.0, t), 1.0);
    wait_until("the wrong login is logged", || {
        wrong.log().contains("authorization violation")
    });
    wait_until("the wrong login is retried", || {
        metric(
            &wrong,
            "strata_nats_events_total{subscription=\"auth\",event=\"client_error\"}",
        ) >= 2.0
    });
    wrong.write_ok("fritz", &line("http", 2.0, t));
    assert_eq!(
        values(&wrong, "fritz", &["http".into(), "h".into()], t),
        [Some(2.0), None]
    );
    assert_eq!(
        metric(&wrong, "strata_nats_connected{subscription=\"auth\"}"),
        0.0
    );
    for server in [&right, &wrong] {
        let log = server.log();
        assert!(!log.contains("secret"), "a password in the log:\n{log}");
    }
}

#[test]
fn slow_consumer_is_counted() {
    // Goal: when core messages arrive faster than one worker commits them (fsync per
    // commit), what passes `nats-pending-messages` or `nats-pending-bytes` is dropped and
    // counted exactly (stored + dropped = sent), never silent, and logged.
    let nats = NatsServer::start();
    for (subject, limits) in [
        ("slow.count", json!({"nats-pending-messages": 2})),
        ("slow.bytes", json!({"nats-pending-bytes": 300})),
    ] {
        let server = strata_on(
            &nats,
            subject,
            json!({"num-workers": 1, "wal": {"fsync": "always"}, "limits": limits}),
        );
        nats.wait_for_subscriptions(subject, 1, TIMEOUT);
        let t = minutes_ago(10);
        let sent = 3000;
        nats.client().publish(
            subject,
            (0..sent).map(|i| line(&format!("s{i}"), 1.0, t).into_bytes()),
        );
        let drops = format!("strata_nats_slow_consumer_drops_total{{subscription=\"{subject}\"}}");
        let handled = || messages(&server, subject, "stored") + metric(&server, &drops);
        wait_until("every message stored or dropped", || {
            handled() == sent as f64
        });
        let stored = messages(&server, subject, "stored");
        assert!(
            stored > 0.0 && stored < sent as f64,
            "{subject}: stored {stored}"
        );
        let hosts = hosts("s", sent);
        let found = values(&server, "fritz", &hosts, t).iter().flatten().count();
        assert_eq!(found as f64, stored, "{subject}");
        assert!(server.log().contains("ingest cannot keep up"), "{subject}");
    }
}

/// A JetStream run for the crash and shutdown tests: stream `S`, a Strata (one worker,
/// fsync always, ack-wait 2 s) consuming it, 500 messages stored in the stream and ingest
/// begun.
struct JetStreamRun {
    /// Runs as long as the run (killed on drop).
    _nats: NatsServer,
    client: NatsClient,
    server: Server,
    hosts: Vec<String>,
    t: i64,
}

impl JetStreamRun {
    fn start() -> Self {
        let nats = NatsServer::start();
        let client = nats.client();
        client.create_stream("S", &["js.>"]);
        let server = strata(
            json!({"address": nats.url()}),
            json!([{"subscribe-to": "js.m", "cluster-tag": "fritz",
                    "jetstream": {"stream": "S", "consumer": "strata", "ack-wait": "2s"}}]),
            json!({"num-workers": 1, "wal": {"fsync": "always"}}),
        );
        let t = minutes_ago(10);
        let hosts = hosts("j", 500);
        client.publish_stored(
            "js.m",
            hosts
                .iter()
                .enumerate()
                .map(|(i, host)| line(host, i as f64, t).into_bytes()),
        );
        wait_until("ingest has begun", || {
            metric(&server, "strata_ingest_samples_total") > 0.0
        });
        Self {
            _nats: nats,
            client,
            server,
            hosts,
            t,
        }
    }

    /// After a restart: the consumer is done and every message is stored.
    fn assert_nothing_lost(&mut self) {
        self.server.restart();
        wait_until("the consumer has nothing left", || {
            self.client
                .consumer_state("S", "strata")
                .is_some_and(|s| s.num_pending == 0 && s.num_ack_pending == 0)
        });
        let expected: Vec<Option<f64>> = (0..self.hosts.len()).map(|i| Some(i as f64)).collect();
        assert_eq!(values(&self.server, "fritz", &self.hosts, self.t), expected);
    }
}

#[test]
fn jetstream_survives_sigkill() {
    // Goal: with fsync always, a JetStream message is acknowledged only once it is in the
    // WAL: killing Strata mid-stream and starting it again loses nothing.
    let mut run = JetStreamRun::start();
    let at_kill = run.client.consumer_state("S", "strata").unwrap();
    run.server.kill_now();
    run.assert_nothing_lost();
    eprintln!("at the kill: {at_kill:?}");
}

/// An existing consumer made with `ack_policy` (and no filter subject) is refused for
/// `js.m`: counted as `kind`, logged with `log`; the core subscription beside it runs.
fn existing_consumer_is_refused(ack_policy: strata_testkit::AckPolicy, kind: &str, log: &str) {
    let nats = NatsServer::start();
    let client = nats.client();
    client.create_stream("S", &["js.>"]);
    client.create_consumer("S", "existing", ack_policy);
    let server = strata(
        json!({"address": nats.url()}),
        json!([{"subscribe-to": "js.m", "cluster-tag": "fritz",
                "jetstream": {"stream": "S", "consumer": "existing"}},
               {"subscribe-to": "core", "cluster-tag": "fritz"}]),
        json!({}),
    );
    let refusals =
        format!("strata_nats_jetstream_errors_total{{subscription=\"js.m\",kind=\"{kind}\"}}");
    wait_until("the refusal is counted", || {
        metric(&server, &refusals) == 1.0
    });
    assert!(server.log().contains(log));
    send_line(&nats, &server, "core", ("c", 1.0, minutes_ago(10)), 1.0);
}

#[test]
fn jetstream_consumer_with_another_ack_policy_is_refused() {
    // Goal: an existing consumer that does not need acknowledgements is not used (Strata
    // could not promise anything with it): logged, counted, the other subscription runs.
    existing_consumer_is_refused(
        strata_testkit::AckPolicy::None,
        "ack_policy",
        "ack policy is not explicit",
    );
}

#[test]
fn jetstream_consumer_with_another_filter_subject_is_refused() {
    // Goal: an existing consumer of other subjects (here: all of the stream) is not used:
    // its messages could be meant for another subscription with another cluster tag.
    existing_consumer_is_refused(
        strata_testkit::AckPolicy::Explicit,
        "filter_subject",
        "its filter subject is not the subscription's",
    );
}

#[test]
fn nats_config_errors_stop_the_start() {
    // Goal: a credentials, seed or TLS file that cannot be used is a configuration error
    // reported at start, before recovery and listening (unlike a down server), and a bad
    // seed is never echoed.
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let bad_seed = dir.path().join("seed");
    std::fs::write(&bad_seed, "SUAnotaseed-secret\n").unwrap();
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "not a certificate").unwrap();
    let cases = [
        (
            json!({"nkey-seed-file": "/nonexistent/seed"}),
            "nkey-seed-file /nonexistent/seed".to_owned(),
        ),
        (
            json!({"nkey-seed-file": bad_seed}),
            format!(
                "nkey-seed-file {}: does not hold an nkey seed",
                bad_seed.display()
            ),
        ),
        (
            json!({"tls": {"ca-file": not_pem}}),
            format!("tls.ca-file {}: no certificate", not_pem.display()),
        ),
        (
            json!({"tls": {"cert-file": not_pem, "key-file": not_pem}}),
            format!("tls.cert-file {}: no certificate", not_pem.display()),
        ),
    ];
    for (mut nats, expected) in cases {
        nats["address"] = json!("nats://127.0.0.1:1");
        let config = dir.path().join("config.json");
        std::fs::write(
            &config,
            json!({"main": {"addr": format!("127.0.0.1:{port}")},
                   "nats": nats,
                   "metric-store": {"retention-in-memory": "1h",
                                    "checkpoints": {"directory": dir.path().join("data")},
                                    "nats-subscriptions": [{"subscribe-to": "x"}]}})
            .to_string(),
        )
        .unwrap();
        let output = common::run_strata(
            dir.path(),
            &["serve", "--config", config.to_str().unwrap()],
            TIMEOUT,
        );
        assert!(!output.status.success());
        assert!(output.stderr.contains(&expected), "{}", output.stderr);
        assert!(!output.stderr.contains("notaseed"), "{}", output.stderr);
        assert!(
            !output.stderr.contains("strata listening"),
            "{}",
            output.stderr
        );
    }
}

#[test]
fn sigterm_stops_nats_first_and_loses_nothing() {
    // Goal: on SIGTERM, NATS ingest stops receiving and finishes (commits and acknowledges)
    // what it holds before HTTP stops and the final snapshot is written; a restart then
    // gets the rest of the stream, nothing lost.
    let mut run = JetStreamRun::start();
    run.server.signal("TERM");
    let status = run
        .server
        .wait_exit(TIMEOUT)
        .expect("strata exits after SIGTERM");
    assert!(status.success(), "{status}");
    let log = run.server.log();
    let stopped = log.find("NATS ingest stopped").expect("NATS stop logged");
    let snapshot = log.find("final snapshot written").expect("snapshot logged");
    assert!(stopped < snapshot, "{log}");
    run.assert_nothing_lost();
}

#[test]
fn sigterm_with_nats_down_commits_what_the_client_holds() {
    // Goal: core messages the client received before the server went down are still
    // committed at SIGTERM (the client cannot drain without a server, but it holds them).
    let mut nats = NatsServer::start();
    let mut server = strata_on(
        &nats,
        "held",
        json!({"num-workers": 1, "limits": {"nats-pending-messages": 1000}}),
    );
    nats.wait_for_subscriptions("held", 1, TIMEOUT);
    let t = minutes_ago(10);
    let hosts = hosts("h", 300);
    // Many copies of a line per message: the worker takes a while over each.
    nats.client().publish(
        "held",
        hosts
            .iter()
            .enumerate()
            .map(|(i, host)| line(host, i as f64, t).repeat(2000).into_bytes()),
    );
    wait_until("the server sent every message", || {
        nats.sent_to_subscribers("held") == Some(hosts.len() as u64)
    });
    nats.kill();
    wait_until("strata saw the server go", || {
        metric(&server, "strata_nats_connected{subscription=\"held\"}") == 0.0
    });
    let handled_at_term = messages(&server, "held", "stored");
    server.signal("TERM");
    let status = server.wait_exit(TIMEOUT).expect("strata exits");
    assert!(status.success(), "{status}");
    server.restart();
    let expected: Vec<Option<f64>> = (0..hosts.len()).map(|i| Some(i as f64)).collect();
    assert_eq!(values(&server, "fritz", &hosts, t), expected);
    // Else the test proves nothing: the client still held messages at SIGTERM.
    assert!(
        handled_at_term < hosts.len() as f64,
        "all {handled_at_term} handled before SIGTERM"
    );
}

#[test]
fn sigterm_with_nats_down_is_bounded() {
    // Goal: a NATS server that is down does not hold up the shutdown beyond the drain
    // timeout (10 s).
    let mut nats = NatsServer::start();
    nats.stop();
    let mut server = strata(
        json!({"address": nats.url()}),
        json!([{"subscribe-to": "a"}, {"subscribe-to": "b",
                "jetstream": {"stream": "S", "consumer": "c"}}]),
        json!({}),
    );
    server.signal("TERM");
    let status = server
        .wait_exit(Duration::from_secs(20))
        .expect("strata exits within the drain timeout");
    assert!(status.success(), "{status}");
}

#[test]
fn jetstream_naks_when_the_wal_fails_and_nothing_is_lost() {
    // Goal: a message whose commit the write-ahead log refuses is not acknowledged but
    // answered -NAK, so that JetStream delivers it again; after a restart (a log that
    // writes again) every message is stored. The log is made to fail with a file size limit
    // (`prlimit --fsize`), as in wal_poisoned.rs.
    const LINES: usize = 2000;
    let nats = NatsServer::start();
    let client = nats.client();
    client.create_stream("S", &["js.>"]);
    let mut server = strata(
        json!({"address": nats.url()}),
        json!([{"subscribe-to": "js.m", "cluster-tag": "fritz",
                "jetstream": {"stream": "S", "consumer": "strata", "ack-wait": "2s"}}]),
        json!({"wal": {"fsync": "batch"}}),
    );
    let start = minutes_ago(LINES as i64 + 10);
    let payload = |host: &str| -> Vec<u8> {
        (0..LINES)
            .map(|i| line(host, i as f64, start + 60 * i as i64))
            .collect::<String>()
            .into_bytes()
    };
    server.write_ok("fritz", &String::from_utf8(payload("http")).unwrap());
    server.limit_file_size(64 << 10);
    let all = hosts("w", 20);
    client.publish_stored("js.m", all.iter().map(|host| payload(host)));
    wait_until("a failed commit is answered -NAK", || {
        messages(&server, "js.m", "failed") > 0.0
            && metric(
                &server,
                "strata_nats_jetstream_acks_total{subscription=\"js.m\",kind=\"nak\"}",
            ) > 0.0
    });
    assert!(server.is_running(), "SIGXFSZ killed the server");
    server.kill_now();
    server.restart();
    wait_until("the consumer has nothing left", || {
        client
            .consumer_state("S", "strata")
            .is_some_and(|s| s.num_pending == 0 && s.num_ack_pending == 0)
    });
    let to = start + 60 * LINES as i64;
    let expected: Vec<Option<f64>> = (0..LINES).map(|i| Some(i as f64)).collect();
    for host in &all {
        let response = server.query(&json!({"cluster": "fritz", "from": start, "to": to,
                                            "queries": [{"metric": "cpu_load", "host": host}]}));
        let data: Vec<Option<f64>> = response["results"][0][0]["data"]
            .as_array()
            .unwrap_or_else(|| panic!("{host}: {response}"))
            .iter()
            .map(Value::as_f64)
            .collect();
        assert_eq!(data, expected, "{host}");
    }
    assert!(
        metric(
            &server,
            "strata_nats_redelivered_messages_total{subscription=\"js.m\"}"
        ) > 0.0
    );
}

#[test]
fn tls_with_a_client_certificate() {
    // Goal: `tls` (CA, client certificate and key) and a `tls://` address reach a server
    // that requires TLS and a client certificate; without the certificate the handshake
    // fails, is counted and retried, and HTTP still serves.
    let nats = NatsServer::start_with_tls();
    let dir = nats.tls_dir().unwrap();
    let file = |name: &str| dir.join(name).display().to_string();
    let subscription = json!([{"subscribe-to": "tls", "cluster-tag": "fritz"}]);
    let good = strata(
        json!({"address": format!("tls://127.0.0.1:{}", nats.port()),
               "tls": {"ca-file": file("ca.crt"), "cert-file": file("client.crt"),
                       "key-file": file("client.key")}}),
        subscription.clone(),
        json!({}),
    );
    let without_cert = strata(
        json!({"address": nats.url(), "tls": {"ca-file": file("ca.crt")}}),
        subscription,
        json!({}),
    );
    let t = minutes_ago(10);
    send_line(&nats, &good, "tls", ("h", 1.0, t), 1.0);
    wait_until("the failed handshakes are counted", || {
        metric(
            &without_cert,
            "strata_nats_events_total{subscription=\"tls\",event=\"client_error\"}",
        ) >= 2.0
    });
    assert_eq!(
        metric(&without_cert, "strata_nats_connected{subscription=\"tls\"}"),
        0.0
    );
    without_cert.write_ok("fritz", &line("http", 2.0, t));
    assert_eq!(
        values(&without_cert, "fritz", &["http".into()], t),
        [Some(2.0)]
    );
}

#[test]
fn nkey_seed_file_auth() {
    // Goal: `nkey-seed-file` logs in to a server that knows the user by its nkey.
    let nats = NatsServer::start_with_nkey();
    let server = strata(
        json!({"address": nats.url(),
               "nkey-seed-file": nats.nkey_seed_file().display().to_string()}),
        json!([{"subscribe-to": "nk", "cluster-tag": "fritz"}]),
        json!({}),
    );
    let t = minutes_ago(10);
    send_line(&nats, &server, "nk", ("h", 3.0, t), 1.0);
    assert_eq!(values(&server, "fritz", &["h".into()], t), [Some(3.0)]);
}

#[test]
fn jetstream_resumes_after_nats_restart() {
    // Goal: a JetStream subscription survives a restart of the NATS server: the consumer is
    // read again and messages published after the restart are stored.
    let mut nats = NatsServer::start();
    nats.client().create_stream("S", &["js.>"]);
    let server = strata(
        json!({"address": nats.url()}),
        json!([{"subscribe-to": "js.m", "cluster-tag": "fritz",
                "jetstream": {"stream": "S", "consumer": "strata"}}]),
        json!({}),
    );
    let t = minutes_ago(10);
    nats.client()
        .publish_stored("js.m", [line("before", 1.0, t).into_bytes()]);
    wait_until("the first message is stored", || {
        messages(&server, "js.m", "stored") == 1.0
    });
    nats.restart();
    nats.client()
        .publish_stored("js.m", [line("after", 2.0, t).into_bytes()]);
    wait_until("the second message is stored", || {
        messages(&server, "js.m", "stored") == 2.0
    });
    assert_eq!(
        values(&server, "fritz", &["before".into(), "after".into()], t),
        [Some(1.0), Some(2.0)]
    );
}

#[test]
fn subscriptions_without_a_nats_section_are_ignored_with_a_warning() {
    // Goal: as in cc-metric-store, subscriptions without a connection receive nothing; the
    // start says so instead of staying silent.
    let server = Server::start_with_config(&json!({
        "metric-store": {"nats-subscriptions": [{"subscribe-to": "x", "cluster-tag": "fritz"}]}
    }));
    let log = server.log();
    assert!(
        log.contains("metric-store.nats-subscriptions are ignored: there is no nats section"),
        "{log}"
    );
    assert!(!server.metrics().contains("strata_nats_connected{"));
}
