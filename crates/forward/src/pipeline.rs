//! One run of an endpoint's pipeline from a start position with a fixed number of shards:
//! a reader thread turns log records into samples for the shards, each shard batches and
//! sends, and acknowledgements flow back into [`Acks`]. An epoch is thrown away whole —
//! queues included — to reshard, to skip past a backlog budget, or to shut down; the next one
//! starts again at the acknowledged position, so nothing in memory is ever needed again.

use crate::acks::{Acks, Ticket};
use crate::deliver::Sender;
use crate::labels::Labels;
use crate::metrics::{EndpointMetrics, reason};
use crate::proto::OutSample;
use crate::relabel::Relabeler;
use crate::series::{EndpointSeries, Mark, SegmentRefs, SeriesRef};
use parking_lot::Mutex;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use strata_wal::{Committed, Event, LogReader, OwnedRecord, Position, RefBatch, Refs};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

/// Record batches queued per shard before the reader waits (samples are bounded separately,
/// by the pending-samples budget).
const SHARD_QUEUE_MESSAGES: usize = 64;

/// Bounds of the samples an endpoint holds read but not yet delivered (twice a full request
/// per shard in between): at most ~8 MB, at least enough to keep a few shards busy.
const PENDING_SAMPLES_MIN: usize = 10_000;
const PENDING_SAMPLES_MAX: usize = 100_000;

/// How long the reader waits for new records before it checks whether to stop.
const READ_WAIT: Duration = Duration::from_millis(250);

/// A sample on its way to a shard: 40 bytes, so a lagging endpoint's read-ahead stays small.
/// Its record's sequence number is in [`Acks`] (by ticket); an uncached series' reference is
/// its label hash.
#[derive(Debug)]
pub struct Item {
    pub labels: Labels,
    pub timestamp_ms: i64,
    pub ticket: Ticket,
    /// Log values are f32; sent as f64.
    pub value: f32,
    /// The sample's place in its record.
    pub index: u32,
    /// The shared series id, or [`UNCACHED_ID`].
    pub id: u32,
}

/// [`Item::id`] of a series beyond the shared table: referred to by its label hash.
const UNCACHED_ID: u32 = u32::MAX;
const _: () = assert!(std::mem::size_of::<Item>() == 40);

impl Item {
    fn series(&self) -> SeriesRef {
        match self.id {
            UNCACHED_ID => SeriesRef::Hash(self.labels.stable_hash()),
            id => SeriesRef::Id(id),
        }
    }
}

/// Where a sample being sent came from: its record's ticket, its series and its place.
#[derive(Debug, Clone, Copy)]
struct Origin {
    ticket: Ticket,
    series: SeriesRef,
    index: u32,
}

/// What the pipeline shares with its endpoint.
#[derive(Debug, Default)]
pub struct Progress {
    /// Newest sample timestamp read from the log and delivered (ms).
    pub highest_read_ms: AtomicI64,
    pub highest_sent_ms: AtomicI64,
    /// Samples read from the log and handed to shards, and samples delivered (sent or
    /// deliberately dropped): the resharding rates.
    pub samples_in: AtomicU64,
    pub samples_out: AtomicU64,
    /// Time spent in delivery, for the time per sample.
    pub send_nanos: AtomicU64,
    /// When a delivery last completed, for resharding.
    pub last_delivery: Mutex<Option<Instant>>,
    /// Log bytes read, for the bytes-per-sample estimate.
    pub bytes_read: AtomicU64,
    /// The end of the furthest record read by any epoch: records before it are read again
    /// after a reshard or restart of the epoch, and their drops are not counted twice.
    pub read_end: Mutex<Position>,
}

/// Everything an epoch needs.
pub struct EpochSetup {
    pub name: String,
    pub wal_directory: PathBuf,
    pub committed: Arc<Committed>,
    pub start: Position,
    pub shards: usize,
    pub max_samples_per_send: usize,
    pub batch_send_deadline: Duration,
    pub relabeler: Arc<Relabeler>,
    pub sender: Arc<Sender>,
    pub metrics: EndpointMetrics,
    /// Label sets and acknowledged marks: they outlive epochs.
    pub series: Arc<Mutex<EndpointSeries>>,
    pub progress: Arc<Progress>,
}

/// A running epoch.
pub struct Epoch {
    pub acks: Arc<Mutex<Acks>>,
    stop: Arc<AtomicBool>,
    cancel: watch::Sender<bool>,
    drain: watch::Sender<bool>,
    /// Samples read and not yet delivered, to take off the gauge when the epoch ends.
    pending: Arc<AtomicI64>,
    metrics: EndpointMetrics,
    reader: Option<JoinHandle<Result<(), String>>>,
    shards: JoinSet<()>,
}

impl Epoch {
    pub fn start(setup: EpochSetup) -> Result<Self, String> {
        let acks = Arc::new(Mutex::new(Acks::new(setup.start)));
        let stop = Arc::new(AtomicBool::new(false));
        let (cancel, cancelled) = watch::channel(false);
        let (drain, draining) = watch::channel(false);
        let pending = Arc::new(AtomicI64::new(0));
        // Samples read and not yet delivered: bounds the memory of a lagging endpoint (about
        // 80 bytes a sample), whatever the shard count.
        let pending_max = (setup.max_samples_per_send * setup.shards * 2)
            .clamp(PENDING_SAMPLES_MIN, PENDING_SAMPLES_MAX);
        let permits = Arc::new(Semaphore::new(pending_max));
        let unbudgeted = Arc::new(AtomicUsize::new(0));
        let mut queues = Vec::with_capacity(setup.shards);
        let mut shards = JoinSet::new();
        for _ in 0..setup.shards {
            let (sender, receiver) = mpsc::channel(SHARD_QUEUE_MESSAGES);
            queues.push(sender);
            shards.spawn(run_shard(Shard {
                receiver,
                sender: setup.sender.clone(),
                acks: acks.clone(),
                series: setup.series.clone(),
                permits: permits.clone(),
                unbudgeted: unbudgeted.clone(),
                cancelled: cancelled.clone(),
                draining: draining.clone(),
                pending: pending.clone(),
                max_samples_per_send: setup.max_samples_per_send,
                batch_send_deadline: setup.batch_send_deadline,
                progress: setup.progress.clone(),
                metrics: setup.metrics.clone(),
            }));
        }
        let replay_end = setup.committed.position();
        let reader =
            LogReader::<Refs>::open_as(&setup.wal_directory, setup.start, Some(setup.committed))
                .map_err(|e| e.to_string())?;
        let metrics_for_epoch = setup.metrics.clone();
        let read = ReadLoop {
            reader,
            refs: SegmentRefs::default(),
            series: setup.series,
            relabeler: setup.relabeler,
            queues,
            acks: acks.clone(),
            replay_end,
            permits,
            unbudgeted: unbudgeted.clone(),
            pending: pending.clone(),
            pending_max,
            stop: stop.clone(),
            progress: setup.progress,
            metrics: setup.metrics,
            runtime: tokio::runtime::Handle::current(),
        };
        let reader = std::thread::Builder::new()
            .name(format!("rw-read-{}", setup.name))
            .spawn(move || read.run())
            .map_err(|e| format!("starting the reader thread: {e}"))?;
        Ok(Self {
            acks,
            stop,
            cancel,
            drain,
            pending,
            metrics: metrics_for_epoch,
            reader: Some(reader),
            shards,
        })
    }

    /// The reader's error, once it has stopped on one.
    pub fn failed(&mut self) -> Option<String> {
        if !self.reader.as_ref().is_some_and(JoinHandle::is_finished) {
            return None;
        }
        match self.reader.take().map(JoinHandle::join) {
            Some(Ok(Err(error))) => Some(error),
            Some(Err(_)) => Some("the reader thread panicked".into()),
            // The reader only ends by itself on an error.
            Some(Ok(Ok(()))) | None => Some("the reader stopped".into()),
        }
    }

    /// Stops reading, lets each shard finish the request it has in flight (for up to
    /// `drain`: an answer already on its way need not be sent again), then cancels the rest
    /// and drops what is queued; returns the acknowledged position.
    pub async fn stop(mut self, drain: Duration) -> Position {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.drain.send(true);
        let drained = tokio::time::timeout(drain, async {
            while self.shards.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            let _ = self.cancel.send(true);
            while self.shards.join_next().await.is_some() {}
        }
        if let Some(reader) = self.reader.take() {
            let _ = tokio::task::spawn_blocking(move || reader.join()).await;
        }
        // Read and never delivered: they are read again by the next epoch.
        let left = self.pending.swap(0, Ordering::Relaxed);
        self.metrics.samples_pending.dec_by(left);
        self.acks.lock().done()
    }
}

struct ReadLoop {
    reader: LogReader<Refs>,
    refs: SegmentRefs,
    series: Arc<Mutex<EndpointSeries>>,
    relabeler: Arc<Relabeler>,
    queues: Vec<mpsc::Sender<Vec<Item>>>,
    acks: Arc<Mutex<Acks>>,
    /// Records that start before this were in the log when the epoch began, so they may have
    /// been sent before: their samples pass the acknowledged-position hint first.
    replay_end: Position,
    permits: Arc<Semaphore>,
    /// Samples handed out without a permit (a record larger than the whole budget): the
    /// shards return that many fewer permits.
    unbudgeted: Arc<AtomicUsize>,
    pending: Arc<AtomicI64>,
    pending_max: usize,
    stop: Arc<AtomicBool>,
    progress: Arc<Progress>,
    metrics: EndpointMetrics,
    runtime: tokio::runtime::Handle,
}

impl ReadLoop {
    fn run(mut self) -> Result<(), String> {
        let mut per_shard: Vec<Vec<Item>> = (0..self.queues.len()).map(|_| Vec::new()).collect();
        while !self.stop.load(Ordering::Relaxed) {
            let event = match self.reader.next(READ_WAIT) {
                Ok(Some(event)) => event,
                Ok(None) => continue,
                Err(error) => return Err(error.to_string()),
            };
            let entry = match event {
                Event::Record(entry) => entry,
                Event::Damage(damage) => {
                    tracing::error!(
                        segment = damage.segment,
                        offset = damage.offset,
                        reason = %damage.reason,
                        records_lost = ?damage.records_lost,
                        "remote write: damaged log; the records in it cannot be forwarded"
                    );
                    self.metrics.log_damage.inc();
                    continue;
                }
            };
            self.progress
                .bytes_read
                .fetch_add(entry_bytes(entry.start, entry.end), Ordering::Relaxed);
            let OwnedRecord::Batch(batch) = entry.record else {
                self.acks.lock().open(entry.end, entry.sequence, 0);
                continue;
            };
            let count = self.split(
                &batch,
                (entry.start, entry.end),
                entry.sequence,
                &mut per_shard,
            );
            self.reader.recycle(batch);
            let ticket = self.acks.lock().open(entry.end, entry.sequence, count);
            if count == 0 {
                continue;
            }
            self.progress
                .samples_in
                .fetch_add(u64::from(count), Ordering::Relaxed);
            if !self.wait_for_room(count as usize) {
                break;
            }
            for (shard, items) in per_shard.iter_mut().enumerate() {
                if items.is_empty() {
                    continue;
                }
                for item in items.iter_mut() {
                    item.ticket = ticket;
                }
                let message = std::mem::take(items);
                if self.queues[shard].blocking_send(message).is_err() {
                    // The shards are gone: the epoch is stopping.
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Sorts a record's samples into `per_shard` (tickets still unset): those the endpoint
    /// drops are counted, those the hint says were acknowledged are skipped. Returns how many
    /// are to be sent.
    fn split(
        &mut self,
        batch: &RefBatch,
        (start, end): (Position, Position),
        sequence: u64,
        per_shard: &mut [Vec<Item>],
    ) -> u32 {
        let replayed = start < self.replay_end;
        let mut series = self.series.lock();
        self.refs.enter(start.segment);
        for definition in &batch.defined {
            let resolved = series.resolve(&definition.key(), &self.relabeler);
            self.refs.define(definition, resolved);
        }
        let (mut count, mut dropped, mut skipped, mut highest) = (0, 0, 0, i64::MIN);
        for (index, sample) in batch.samples.iter().enumerate() {
            // A record holds at most 8 MiB: far fewer samples than u32::MAX.
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            let mark = Mark { sequence, index };
            let Some((shard_key, reference, labels)) =
                self.refs.lookup(sample.series, &series, &self.relabeler)
            else {
                dropped += 1;
                continue;
            };
            if replayed && series.acked(reference).is_some_and(|acked| acked >= mark) {
                skipped += 1;
                continue;
            }
            let timestamp_ms = sample.timestamp_s.saturating_mul(1000);
            let shard = (shard_key % per_shard.len() as u64) as usize;
            per_shard[shard].push(Item {
                labels,
                timestamp_ms,
                ticket: 0,
                value: sample.value,
                index,
                id: match reference {
                    SeriesRef::Id(id) => id,
                    SeriesRef::Hash(_) => UNCACHED_ID,
                },
            });
            count += 1;
            highest = highest.max(timestamp_ms);
        }
        drop(series);
        // Read again by a later epoch: counted the first time.
        let mut read_end = self.progress.read_end.lock();
        if start >= *read_end {
            self.metrics.dropped(reason::DROPPED_SERIES, dropped);
        }
        *read_end = (*read_end).max(end);
        drop(read_end);
        self.metrics.replay_skipped.inc_by(skipped);
        self.progress
            .highest_read_ms
            .fetch_max(highest, Ordering::Relaxed);
        count
    }

    /// Takes room for `samples` in the pending budget, waiting while the shards are behind.
    /// A record larger than the whole budget takes all of it. False when told to stop.
    fn wait_for_room(&self, samples: usize) -> bool {
        let wanted = samples.min(self.pending_max) as u32;
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return false;
            }
            let acquire = self.permits.clone().acquire_many_owned(wanted);
            match self
                .runtime
                .block_on(async { tokio::time::timeout(READ_WAIT, acquire).await })
            {
                Ok(Ok(permit)) => {
                    // Returned by the shards as they deliver, sample by sample.
                    permit.forget();
                    self.unbudgeted
                        .fetch_add(samples - wanted as usize, Ordering::Relaxed);
                    self.metrics.samples_pending.inc_by(samples as i64);
                    self.pending.fetch_add(samples as i64, Ordering::Relaxed);
                    return true;
                }
                Ok(Err(_)) => return false,
                Err(_) => continue,
            }
        }
    }
}

fn entry_bytes(start: Position, end: Position) -> u64 {
    match start.segment == end.segment {
        true => end.offset.saturating_sub(start.offset),
        false => end.offset,
    }
}

struct Shard {
    receiver: mpsc::Receiver<Vec<Item>>,
    sender: Arc<Sender>,
    acks: Arc<Mutex<Acks>>,
    series: Arc<Mutex<EndpointSeries>>,
    permits: Arc<Semaphore>,
    unbudgeted: Arc<AtomicUsize>,
    cancelled: watch::Receiver<bool>,
    /// The epoch is ending: finish the request in flight, start no other.
    draining: watch::Receiver<bool>,
    pending: Arc<AtomicI64>,
    max_samples_per_send: usize,
    batch_send_deadline: Duration,
    progress: Arc<Progress>,
    metrics: EndpointMetrics,
}

/// Batches a shard's samples by count and deadline and delivers them one request at a time,
/// which keeps each series in order.
async fn run_shard(mut shard: Shard) {
    let mut carry: std::collections::VecDeque<Item> = std::collections::VecDeque::new();
    let mut samples: Vec<OutSample> = Vec::with_capacity(shard.max_samples_per_send);
    let mut origins: Vec<Origin> = Vec::with_capacity(shard.max_samples_per_send);
    loop {
        if *shard.draining.borrow() || *shard.cancelled.borrow() {
            return;
        }
        samples.clear();
        origins.clear();
        let mut deadline = None;
        while samples.len() < shard.max_samples_per_send {
            if let Some(item) = carry.pop_front() {
                origins.push(Origin {
                    ticket: item.ticket,
                    series: item.series(),
                    index: item.index,
                });
                samples.push(OutSample {
                    labels: item.labels,
                    timestamp_ms: item.timestamp_ms,
                    value: f64::from(item.value),
                });
                deadline
                    .get_or_insert_with(|| tokio::time::Instant::now() + shard.batch_send_deadline);
                continue;
            }
            let received = match deadline {
                None => tokio::select! {
                    message = shard.receiver.recv() => message,
                    _ = shard.draining.changed() => return,
                    _ = shard.cancelled.changed() => return,
                },
                Some(deadline) => tokio::select! {
                    message = shard.receiver.recv() => message,
                    _ = tokio::time::sleep_until(deadline) => break,
                    _ = shard.draining.changed() => return,
                    _ = shard.cancelled.changed() => return,
                },
            };
            match received {
                Some(items) => carry.extend(items),
                None => return,
            }
        }
        if samples.is_empty() {
            continue;
        }
        let started = Instant::now();
        if shard
            .sender
            .deliver(&samples, &shard.cancelled)
            .await
            .is_err()
        {
            return;
        }
        shard
            .progress
            .send_nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        *shard.progress.last_delivery.lock() = Some(Instant::now());
        acknowledge(&shard, &samples, &origins);
    }
}

/// Hands a delivered batch's samples back: log positions to the hint, tickets to the
/// acknowledgements, room to the pending budget.
fn acknowledge(shard: &Shard, samples: &[OutSample], origins: &[Origin]) {
    // Runs of one record: (ticket, samples, sequence). A record still has samples in flight
    // (these), so its sequence number is there to look up.
    let mut runs: Vec<(Ticket, u32, Option<u64>)> = Vec::new();
    {
        let acks = shard.acks.lock();
        for origin in origins {
            match runs.last_mut() {
                Some((ticket, count, _)) if *ticket == origin.ticket => *count += 1,
                _ => runs.push((origin.ticket, 1, acks.sequence(origin.ticket))),
            }
        }
    }
    let mut highest = i64::MIN;
    {
        let mut series = shard.series.lock();
        let mut pairs = samples.iter().zip(origins);
        for &(_, count, sequence) in &runs {
            for (sample, origin) in pairs.by_ref().take(count as usize) {
                highest = highest.max(sample.timestamp_ms);
                if let Some(sequence) = sequence {
                    let mark = Mark {
                        sequence,
                        index: origin.index,
                    };
                    series.acknowledge(origin.series, mark);
                }
            }
        }
    }
    {
        let mut acks = shard.acks.lock();
        for &(ticket, count, _) in &runs {
            acks.acknowledge(ticket, count);
        }
    }
    let delivered = samples.len();
    let unbudgeted = shard
        .unbudgeted
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            Some(n - n.min(delivered))
        })
        .unwrap_or(0);
    shard
        .permits
        .add_permits(delivered - unbudgeted.min(delivered));
    shard.metrics.samples_pending.dec_by(delivered as i64);
    shard.pending.fetch_sub(delivered as i64, Ordering::Relaxed);
    shard
        .progress
        .samples_out
        .fetch_add(delivered as u64, Ordering::Relaxed);
    shard
        .progress
        .highest_sent_ms
        .fetch_max(highest, Ordering::Relaxed);
}
