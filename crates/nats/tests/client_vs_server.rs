//! async-nats 0.51 against Debian's nats-server 2.9 (what scripts/test.sh installs): the calls the
//! runtime makes — core subscribe, an existing stream, a durable pull consumer, ack.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use async_nats::jetstream::{self, consumer::AckPolicy, consumer::pull};
use futures_util::StreamExt;
use strata_testkit::NatsServer;

#[test]
fn core_and_jetstream_pull_ack() {
    let server = NatsServer::start();
    let helper = server.client();
    helper.create_stream("S", &["spike.js.>"]);
    helper.publish_stored("spike.js.a", (0..10).map(|i| format!("m{i}").into_bytes()));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(run(server.url()));
    // The server applies acknowledgements asynchronously to the consumer's state.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let state = helper.consumer_state("S", "strata").unwrap();
        if (state.num_pending, state.num_ack_pending) == (0, 0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "acks not applied: {} pending, {} unacknowledged",
            state.num_pending,
            state.num_ack_pending
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

async fn run(url: String) {
    let client = async_nats::connect(url).await.unwrap();
    let mut sub = client.subscribe("spike.core").await.unwrap();
    client.flush().await.unwrap();
    client.publish("spike.core", "hello".into()).await.unwrap();
    let message = sub.next().await.unwrap();
    assert_eq!(&message.payload[..], b"hello");

    let js = jetstream::new(client.clone());
    let stream = js.get_stream("S").await.unwrap();
    let mut consumer: jetstream::consumer::PullConsumer = stream
        .get_or_create_consumer(
            "strata",
            pull::Config {
                durable_name: Some("strata".into()),
                ack_policy: AckPolicy::Explicit,
                filter_subject: "spike.js.>".into(),
                max_ack_pending: 64,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        consumer.info().await.unwrap().config.ack_policy,
        AckPolicy::Explicit
    );
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(4)
        .messages()
        .await
        .unwrap();
    for i in 0..10 {
        let message = messages.next().await.unwrap().unwrap();
        assert_eq!(message.payload, format!("m{i}").into_bytes());
        assert_eq!(message.info().unwrap().delivered, 1);
        message.ack().await.unwrap();
    }
    client.flush().await.unwrap();
}
