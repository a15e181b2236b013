//! JetStream subscriptions: a durable pull consumer on an existing stream; messages are
//! acknowledged by the worker once committed.

use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::{self as js, AckKind, Message};
use futures_util::StreamExt;
use strata_server::error::ApiError;
use strata_server::ingest::WriteOutcome;

use crate::connect::reconnect_delay;
use crate::{JetStreamConfig, Reader, Subscription};

/// Most messages asked for per pull request (fewer when `nats-pending-messages` is small).
const JS_PULL_BATCH: usize = 64;
/// Client buffer slots kept for heartbeats and status messages beside pulled messages.
const JS_STATUS_ROOM: usize = 2;
/// Unacknowledged messages the server hands out to one consumer, for a consumer Strata
/// creates: pulled batches plus the job queue, with room for a second instance.
const JS_MAX_ACK_PENDING: i64 = 1024;
/// Idle heartbeat of a pull request: a connection lost silently is noticed after 2 of them.
const JS_HEARTBEAT: Duration = Duration::from_secs(5);
/// Shortest interval of "in progress" answers, whatever a consumer's ack wait says.
const PROGRESS_INTERVAL_MIN: Duration = Duration::from_millis(100);
/// How long a failed WAL write waits before JetStream delivers the message again.
const JS_NAK_DELAY: Duration = Duration::from_secs(5);
/// How long one pull request waits on the server.
const JS_PULL_EXPIRES: Duration = Duration::from_secs(30);

/// Reads the subscription's consumer until shutdown; every failure is logged (rate-limited),
/// counted and retried after a backoff — except a consumer whose acknowledgement policy is
/// not explicit, which is refused for good (it would lose or duplicate messages silently).
pub(crate) async fn run(reader: Reader) {
    let subscription = reader.subscription.clone();
    let mut stopped = reader.stopped.clone();
    let Some(config) = subscription.config.jetstream.clone() else {
        return;
    };
    let context = js::new(reader.client.clone());
    let mut failures = 0;
    loop {
        if *stopped.borrow() {
            return;
        }
        // Every step waits on the server (requests time out after 10 s): stop at once.
        let pulled = tokio::select! {
            pulled = pull(&reader, &context, &config) => pulled,
            // Pulled but not queued messages are delivered again after ack-wait.
            _ = stopped.changed() => return,
        };
        match pulled {
            Pulled::Stopped => return,
            Pulled::Refused => return,
            Pulled::Failed(kind, error, received) => {
                subscription.metrics.jetstream_error(kind).inc();
                if let Some(suppressed) = subscription.failure_log.allow(strata_server::now_s()) {
                    tracing::warn!(
                        subscription = subscription.label,
                        stream = config.stream,
                        consumer = config.consumer,
                        kind,
                        error,
                        suppressed,
                        "JetStream consumer failed; retrying"
                    );
                }
                // Back off from the start again once messages flowed in between.
                failures = if received { 1 } else { failures + 1 };
                let backoff = tokio::time::sleep(reconnect_delay(failures));
                tokio::select! {
                    () = backoff => {}
                    _ = stopped.changed() => return,
                }
            }
        }
    }
}

/// A JetStream message on its way through the job queue.
pub(crate) struct Delivery {
    pub message: Message,
    /// The consumer's own `ack_wait` (an existing consumer keeps the one it was created
    /// with, whatever the configuration says now).
    pub ack_wait: Duration,
    /// When it arrived: its ack-wait runs from then, also while it waits in the queue.
    pub received: tokio::time::Instant,
}

enum Pulled {
    Stopped,
    Refused,
    /// What failed, why, and whether messages were received before.
    Failed(&'static str, String, bool),
}

async fn pull(reader: &Reader, context: &js::Context, config: &JetStreamConfig) -> Pulled {
    let subscription = &reader.subscription;
    let stream = match context.get_stream(&config.stream).await {
        Ok(stream) => stream,
        Err(error) => return Pulled::Failed("stream", error.to_string(), false),
    };
    let wanted = pull::Config {
        durable_name: Some(config.consumer.clone()),
        ack_policy: AckPolicy::Explicit,
        ack_wait: config.ack_wait,
        max_ack_pending: JS_MAX_ACK_PENDING,
        filter_subject: subscription.config.subject.clone(),
        deliver_policy: DeliverPolicy::All,
        ..Default::default()
    };
    let consumer: PullConsumer = match stream
        .get_or_create_consumer(&config.consumer, wanted)
        .await
    {
        Ok(consumer) => consumer,
        Err(error) => return Pulled::Failed("consumer", error.to_string(), false),
    };
    let policy = consumer.cached_info().config.ack_policy;
    let ack_wait = consumer.cached_info().config.ack_wait;
    if policy != AckPolicy::Explicit {
        subscription.metrics.jetstream_error("ack_policy").inc();
        tracing::error!(
            subscription = subscription.label,
            stream = config.stream,
            consumer = config.consumer,
            ack_policy = ?policy,
            "JetStream consumer refused: its ack policy is not explicit, so Strata could not \
             acknowledge only what it stored; delete it (Strata creates it) or use another name"
        );
        return Pulled::Refused;
    }
    // A consumer of other subjects would bring lines another subscription (with its own
    // cluster tag) should get, or miss this one's.
    let info = &consumer.cached_info().config;
    // (Several filter subjects, of servers from 2.10, show as an empty one: refused too.)
    if info.filter_subject != subscription.config.subject {
        subscription.metrics.jetstream_error("filter_subject").inc();
        tracing::error!(
            subscription = subscription.label,
            stream = config.stream,
            consumer = config.consumer,
            filter_subject = info.filter_subject,
            "JetStream consumer refused: its filter subject is not the subscription's \
             subscribe-to, so it would deliver other subjects' messages or miss some; delete it \
             (Strata creates it) or use another name"
        );
        return Pulled::Refused;
    }
    let batch = pull_batch(reader.pending_messages);
    let messages = consumer
        .stream()
        .max_messages_per_batch(batch)
        .heartbeat(JS_HEARTBEAT)
        .expires(JS_PULL_EXPIRES)
        .messages()
        .await;
    let mut messages = match messages {
        Ok(messages) => messages,
        Err(error) => return Pulled::Failed("messages", error.to_string(), false),
    };
    let mut received = false;
    loop {
        match messages.next().await {
            Some(Ok(message)) => {
                received = true;
                if message.info().is_ok_and(|info| info.delivered > 1) {
                    subscription.metrics.redelivered.inc();
                }
                let payload = message.payload.clone();
                let delivery = Delivery {
                    message,
                    ack_wait,
                    received: tokio::time::Instant::now(),
                };
                if !reader.queue(payload, Some(delivery)).await {
                    return Pulled::Stopped;
                }
            }
            Some(Err(error)) => return Pulled::Failed("messages", error.to_string(), received),
            // It ends only after a terminal error it already reported: pull again, after
            // the backoff like any failure, so that it never spins.
            None => {
                let error = "the message stream ended".to_owned();
                return Pulled::Failed("messages", error, received);
            }
        }
    }
}

/// Messages asked for per pull request. async-nats asks for more once half a batch is
/// left, so up to 1.5 batches plus heartbeats and status messages may wait in the client's
/// `pending` slots: a batch of at most half of them, less some room, never overflows.
pub(crate) fn pull_batch(pending_messages: usize) -> usize {
    (pending_messages / 2)
        .saturating_sub(JS_STATUS_ROOM)
        .clamp(1, JS_PULL_BATCH)
}

/// The client buffer of a JetStream subscription: `pending-messages`, but at least room for
/// what a pull of one message may bring.
pub(crate) fn client_capacity(pending_messages: usize) -> usize {
    pending_messages.max(2 * pull_batch(pending_messages) + JS_STATUS_ROOM)
}

/// Runs `ingest`, telling the server every `ack_wait / 2` since the message arrived that it
/// is still being worked on, so that a slow commit (or a long wait in the queue) does not
/// cause a redelivery.
pub(crate) async fn with_progress(
    ingest: impl Future<Output = Result<WriteOutcome, ApiError>>,
    delivery: &Delivery,
    subscription: &Subscription,
) -> Result<WriteOutcome, ApiError> {
    let period = (delivery.ack_wait / 2).max(PROGRESS_INTERVAL_MIN);
    every(ingest, delivery.received + period, period, || {
        answer(&delivery.message, Answer::Progress, subscription)
    })
    .await
}

/// Runs `work`, and `tick` at `first` (at once when past) and each `period` after, until it
/// is done.
async fn every<T, F: Future<Output = ()>>(
    work: impl Future<Output = T>,
    first: tokio::time::Instant,
    period: Duration,
    mut tick: impl FnMut() -> F,
) -> T {
    let mut work = std::pin::pin!(work);
    let mut ticks = tokio::time::interval_at(first, period);
    // Late ticks are not caught up: one answer restarts the ack-wait.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            result = &mut work => return result,
            _ = ticks.tick() => tick().await,
        }
    }
}

/// The answers Strata sends; the index of each is that of its counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Committed (also with rejected lines: a redelivery cannot fix them).
    Ack = 0,
    /// The log refused the write: deliver again after [`JS_NAK_DELAY`].
    Nak = 1,
    /// Still being committed: restart the ack-wait.
    Progress = 2,
    /// Failed in a way a redelivery would repeat: never deliver again.
    Term = 3,
}

/// Sends an answer and counts it.
pub(crate) async fn answer(message: &Message, answer: Answer, subscription: &Subscription) {
    let kind = match answer {
        Answer::Ack => AckKind::Ack,
        Answer::Nak => AckKind::Nak(Some(JS_NAK_DELAY)),
        Answer::Progress => AckKind::Progress,
        Answer::Term => AckKind::Term,
    };
    match message.ack_with(kind).await {
        Ok(()) => subscription.metrics.acks[answer as usize].inc(),
        // The client is closed; the server redelivers after ack-wait.
        Err(_) => subscription.metrics.jetstream_error("ack").inc(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn ticks_while_the_work_runs_and_not_after() {
        let second = Duration::from_secs(1);
        let mut ticks = 0;
        let work = tokio::time::sleep(Duration::from_millis(3500));
        let first = tokio::time::Instant::now() + second;
        every(work, first, second, || {
            ticks += 1;
            std::future::ready(())
        })
        .await;
        assert_eq!(ticks, 3);
        let mut late = 0;
        let first = tokio::time::Instant::now() + second;
        every(std::future::ready(()), first, second, || {
            late += 1;
            std::future::ready(())
        })
        .await;
        assert_eq!(late, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn ticks_at_once_when_received_long_ago() {
        // A message that waited in the queue past half its ack-wait is answered at once,
        // then every period, without catching up the missed ticks.
        let received = tokio::time::Instant::now();
        tokio::time::advance(Duration::from_secs(5)).await;
        let mut at = Vec::new();
        let work = tokio::time::sleep(Duration::from_millis(2500));
        every(
            work,
            received + Duration::from_secs(1),
            Duration::from_secs(1),
            || {
                at.push(received.elapsed().as_millis());
                std::future::ready(())
            },
        )
        .await;
        assert_eq!(at, [5000, 6000, 7000]);
    }

    #[test]
    fn pulled_batches_fit_the_client_buffer() {
        for pending in [1, 2, 3, 5, 6, 7, 10, 100, 132, 512, 1 << 20] {
            let batch = pull_batch(pending);
            let capacity = client_capacity(pending);
            assert!((1..=JS_PULL_BATCH).contains(&batch), "{pending}: {batch}");
            // 1.5 batches outstanding plus status messages.
            assert!(
                batch + batch / 2 + JS_STATUS_ROOM <= capacity,
                "{pending}: batch {batch}, capacity {capacity}"
            );
        }
        assert_eq!(pull_batch(512), JS_PULL_BATCH);
    }
}
