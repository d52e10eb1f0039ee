//! A Kafka source's runner: every partition of the topic assigned by hand (no consumer group
//! decides anything), read under `read_committed`, batched, and committed with the offsets
//! after the batch's last messages. On any failure it starts over from the stored offsets.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};

use super::batch::{PendingBatch, Point};
use super::options::KafkaOptions;
use super::payload::PayloadReader;
use super::{RunContext, commit_batch};
use crate::catalog::TableDef;
use crate::error::{Error, Result};
use crate::execute::database::Database;

/// How long CREATE SOURCE and a reconnecting runner wait for the brokers' metadata.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);
/// How often an idle runner looks at the brokers' high-water marks (`lag`).
const LAG_EVERY: Duration = Duration::from_millis(200);

fn kafka_error(brokers: &str, e: KafkaError) -> Error {
    Error::Unreachable(format!("could not reach the Kafka brokers at {brokers}: {e}"))
}

fn consumer(options: &KafkaOptions, group: &str) -> Result<BaseConsumer> {
    ClientConfig::new()
        .set("bootstrap.servers", &options.brokers)
        // Offsets are never committed to the group: asofdb stores them with the rows.
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "false")
        .set("reconnect.backoff.max.ms", "1000")
        // A fetch waits at most this long for data, so watermarks (`lag`) stay fresh.
        .set("fetch.wait.max.ms", "100")
        .set("log_level", "3")
        .create()
        .map_err(|e| kafka_error(&options.brokers, e))
}

/// The topic's partitions (08001 if the brokers cannot be reached or the topic is missing).
fn partitions(consumer: &BaseConsumer, options: &KafkaOptions) -> Result<Vec<i32>> {
    let metadata = consumer
        .fetch_metadata(Some(&options.topic), METADATA_TIMEOUT)
        .map_err(|e| kafka_error(&options.brokers, e))?;
    let topic = metadata.topics().iter().find(|t| t.name() == options.topic);
    match topic {
        Some(topic) if topic.error().is_none() && !topic.partitions().is_empty() => {
            Ok(topic.partitions().iter().map(|p| p.id()).collect())
        }
        _ => Err(Error::Unreachable(format!(
            "topic \"{}\" does not exist on the Kafka brokers at {}",
            options.topic, options.brokers
        ))),
    }
}

/// CREATE SOURCE's check: the brokers answer and the topic exists.
pub(super) fn check_reachable(options: &KafkaOptions) -> Result<()> {
    partitions(&consumer(options, "asofdb_check")?, options).map(|_| ())
}

/// The runner: sessions from the stored position, with backoff between failed ones, until
/// the source is dropped or the server stops.
pub(super) fn run(context: RunContext) {
    let mut backoff = Duration::from_millis(100);
    while !context.stopped() {
        let Some(db) = context.db.upgrade() else { return };
        let outcome = session(&context, &db, &mut backoff);
        drop(db);
        match outcome {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(source = %context.source.def.name, "source failed, retrying in {backoff:?}: {e}");
                context.source.report.lock().retrying(e.to_string());
                if context.sleep(backoff) {
                    return;
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// One connection: assign every partition at its stored offset, then read and commit
/// batches until stopped (Ok) or something fails (Err: the caller starts over).
fn session(context: &RunContext, db: &Arc<Database>, backoff: &mut Duration) -> Result<()> {
    let source = &context.source;
    let def = db.catalog.require_table(&source.def.table)?;
    let options = KafkaOptions::parse(&source.def.options, &def)?;
    let consumer = consumer(&options, &format!("asofdb_{}", source.def.name))?;
    let partitions = partitions(&consumer, &options)?;
    let mut stored = source.report.lock().position.clone();
    let unplaced: Vec<i32> = partitions.iter().copied().filter(|p| !stored.offsets.contains_key(p)).collect();
    if !options.from_earliest && !unplaced.is_empty() {
        // `start = 'latest'`: the end is fixed and stored once, so a restart before the
        // first batch does not skip what arrived meanwhile.
        for partition in unplaced {
            let (_, high) = consumer
                .fetch_watermarks(&options.topic, partition, METADATA_TIMEOUT)
                .map_err(|e| kafka_error(&options.brokers, e))?;
            stored.offsets.insert(partition, high);
        }
        commit_batch(context, db, &def, PendingBatch::new(&def, vec![]), stored.offsets.clone())?;
    }
    let mut assignment = TopicPartitionList::new();
    for partition in &partitions {
        let offset = match stored.offsets.get(partition) {
            Some(offset) => Offset::Offset(*offset),
            None => Offset::Beginning,
        };
        assignment
            .add_partition_offset(&options.topic, *partition, offset)
            .map_err(|e| Error::internal(e.to_string()))?;
    }
    consumer.assign(&assignment).map_err(|e| kafka_error(&options.brokers, e))?;
    source.report.lock().running();
    let names: Vec<String> = options.columns.iter().map(|c| def.columns[*c].name.clone()).collect();
    let reader = PayloadReader::new(options.format, names);
    let batch_time = Duration::from_millis(options.batch_ms);
    let mut batch = PendingBatch::new(&def, options.columns.clone());
    let mut lag_at = Instant::now() - LAG_EVERY;
    let mut healthy = true;
    while !context.stopped() {
        let wait = match batch.started {
            Some(started) => batch_time.saturating_sub(started.elapsed()),
            None => Duration::from_millis(100),
        };
        match consumer.poll(wait) {
            Some(Ok(message)) => {
                let point = Point { partition: message.partition(), offset: message.offset() };
                let micros = message.timestamp().to_millis().map(|ms| ms.saturating_mul(1000));
                batch.push(point, message.payload(), micros, reader.rows(message.payload()));
                healthy = true;
            }
            Some(Err(e)) => {
                // librdkafka reconnects by itself; the source says so meanwhile.
                source.report.lock().retrying(format!("Kafka: {e}"));
                healthy = false;
            }
            None => {}
        }
        let due = batch.started.is_some_and(|s| batch.len() >= options.batch_rows || s.elapsed() >= batch_time);
        if due {
            let offsets = std::mem::take(&mut batch.next_offsets);
            let full = std::mem::replace(&mut batch, PendingBatch::new(&def, options.columns.clone()));
            commit_batch(context, db, &def, full, offsets)?;
            *backoff = Duration::from_millis(100);
            healthy = true;
        } else if batch.is_empty() && lag_at.elapsed() >= LAG_EVERY {
            lag_at = Instant::now();
            skip_markers(context, db, &def, &consumer)?;
            let offsets = source.report.lock().position.offsets.clone();
            if let Some(lag) = lag(&consumer, &options, &partitions, &offsets) {
                let mut report = source.report.lock();
                report.lag = Some(lag);
                if healthy {
                    report.running();
                }
            }
        }
    }
    Ok(())
}

/// Commits the position alone when the consumer moved past offsets that held no message
/// (a transaction's commit marker, an aborted transaction's messages), so `lag` reaches 0.
/// Called with an empty batch: every message the consumer returned is committed.
fn skip_markers(context: &RunContext, db: &Arc<Database>, def: &TableDef, consumer: &BaseConsumer) -> Result<()> {
    let Ok(positions) = consumer.position() else { return Ok(()) };
    let stored = context.source.report.lock().position.offsets.clone();
    let moved: BTreeMap<i32, i64> = positions
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(at) if stored.get(&e.partition()).is_some_and(|s| at > *s) => Some((e.partition(), at)),
            _ => None,
        })
        .collect();
    if moved.is_empty() { Ok(()) } else { commit_batch(context, db, def, PendingBatch::new(def, vec![]), moved) }
}

/// Messages between each partition's stored offset and its high-water mark (under
/// `read_committed`, the last stable offset), summed; `None` until every partition's is known.
fn lag(
    consumer: &BaseConsumer,
    options: &KafkaOptions,
    partitions: &[i32],
    offsets: &BTreeMap<i32, i64>,
) -> Option<i64> {
    let topic = std::ffi::CString::new(options.topic.as_str()).ok()?;
    let mut total = 0;
    for partition in partitions {
        let (low, high) = cached_watermarks(consumer, &topic, *partition)?;
        total += high - offsets.get(partition).copied().unwrap_or(low).max(low);
    }
    Some(total.max(0))
}

/// The watermarks librdkafka last received for a partition with its fetch responses. Asking
/// the broker instead (`fetch_watermarks`) queues behind the consumer's long-polling fetch.
fn cached_watermarks(consumer: &BaseConsumer, topic: &std::ffi::CStr, partition: i32) -> Option<(i64, i64)> {
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the consumer (and so its native handle) outlives the call; `topic` is a valid
    // C string; the out-pointers are to locals.
    let error = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (error == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
        .then_some((low.max(0), high))
}
