//! A Kafka source's runner: every partition of the topic assigned by hand (no consumer group
//! decides anything), read under `read_committed`, batched, and committed with the offsets
//! after the batch's last messages, on a commit thread while the next batch is read. On any
//! failure it starts over from the stored offsets.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};

use super::batch::{PendingBatch, Point};
use super::committer::Committer;
use super::options::KafkaOptions;
use super::payload::PayloadReader;
use super::{Ended, RunContext};
use crate::catalog::{SourcePosition, SourceState, TableDef};
use crate::error::{Error, Result};
use crate::execute::database::Database;

/// How long CREATE SOURCE and a reconnecting runner wait for the brokers' metadata.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a runner looks at the brokers' high-water marks (`lag`), between batches.
const LAG_EVERY: Duration = Duration::from_millis(200);
/// How often a runner asks whether the topic has new partitions, between batches: a round
/// trip to a broker (at most `LAG_EVERY`) that delays reading by that much every 5 s.
const TOPIC_EVERY: Duration = Duration::from_secs(5);

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
        // A stored offset the brokers no longer have is an error, never a silent jump.
        .set("auto.offset.reset", "error")
        .set("reconnect.backoff.max.ms", "1000")
        .set("fetch.wait.max.ms", fetch_wait_ms(options).to_string())
        .set("log_level", "3")
        .create()
        .map_err(|e| kafka_error(&options.brokers, e))
}

/// How long a fetch that finds no data waits for some: `batch_ms` (at least 1, at most 100,
/// so that watermarks and `lag` stay fresh). A broker answers a waiting fetch as soon as data
/// arrives, but librdkafka's mock broker (the tests' and benchmarks') answers only when the
/// wait ends, which would add up to the wait to every message's latency; a wait no longer than
/// the batch window keeps it within what `batch_ms` already allows. The price is idle fetches:
/// at the default of 5 ms, 200 a second to each broker leading a partition of the topic.
fn fetch_wait_ms(options: &KafkaOptions) -> u64 {
    options.batch_ms.clamp(1, 100)
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

/// CREATE SOURCE's check and first position: the brokers answer and the topic exists (08001
/// otherwise); with `start = 'latest'`, every partition's end now, so what is produced after
/// CREATE SOURCE returns is read even if the source is stopped before its first batch.
pub(super) fn first_position(options: &KafkaOptions) -> Result<SourcePosition> {
    let consumer = consumer(options, "asofdb_check")?;
    let mut position = SourcePosition::default();
    for partition in partitions(&consumer, options)? {
        if !options.from_earliest {
            let (_, high) = consumer
                .fetch_watermarks(&options.topic, partition, METADATA_TIMEOUT)
                .map_err(|e| kafka_error(&options.brokers, e))?;
            position.offsets.insert(partition, high);
        }
    }
    Ok(position)
}

/// One connection: assign every partition at its stored offset (the earliest for one without
/// any), then read and commit batches until stopped, or until the table or the topic changes.
/// An error ends it; the caller starts over from the stored position.
pub(super) fn session(context: &RunContext, db: &Arc<Database>, backoff: &mut Duration) -> Result<Ended> {
    let source = &context.source;
    let generation = db.catalog.generation();
    let def = db.catalog.require_table(&source.def.table)?;
    let options = KafkaOptions::parse(&source.def.options, &def)?;
    // The stored position, not the reported one: a commit that failed after its write
    // (its flush, the features' update) left the store ahead of the report.
    let stored = db.catalog.stored_source_position(&source.def.name)?;
    source.report.lock().position = stored.clone();
    let consumer = consumer(&options, &format!("asofdb_{}", source.def.name))?;
    let partitions = partitions(&consumer, &options)?;
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
    let names: Vec<String> = options.columns.iter().map(|c| def.columns[*c].name.clone()).collect();
    let reader = PayloadReader::new(options.format, names);
    let connection = Connection { consumer: &consumer, options: &options, partitions: &partitions, reader: &reader };
    std::thread::scope(|scope| {
        let mut committer = Committer::start(scope, context, db, &def)?;
        let read = read_batches(context, db, &def, &connection, generation, &mut committer);
        let committed = committer.finish();
        if committer.committed_any() {
            *backoff = Duration::from_millis(100);
        }
        match (read, committed) {
            (Err(e), Err(lost)) => {
                // The session ends with the reading side's error; the commit's is logged.
                tracing::warn!(source = %context.source.def.name, "a batch's commit failed too: {lost}");
                Err(e)
            }
            (read, committed) => committed.and(read),
        }
    })
}

/// A session's consumer and what it reads with.
struct Connection<'a> {
    consumer: &'a BaseConsumer,
    options: &'a KafkaOptions,
    partitions: &'a [i32],
    reader: &'a PayloadReader,
}

/// Reads messages into batches and hands each to `committer` when it is due, until stopped,
/// or until the table or the topic changes.
fn read_batches(
    context: &RunContext,
    db: &Arc<Database>,
    def: &TableDef,
    connection: &Connection,
    generation: u64,
    committer: &mut Committer,
) -> Result<Ended> {
    let Connection { consumer, options, partitions, reader } = *connection;
    let source = &context.source;
    let batch_time = Duration::from_millis(options.batch_ms);
    let mut batch = PendingBatch::new(def, options.columns.clone());
    let (mut lag_at, mut topic_at) = (Instant::now() - LAG_EVERY, Instant::now());
    while !context.stopped() {
        let wait = match batch.started {
            Some(started) => batch_time.saturating_sub(started.elapsed()),
            None => Duration::from_millis(100),
        };
        let polled = consumer.poll(wait);
        committer.check()?;
        if db.catalog.generation() != generation {
            // A table changed (ALTER TABLE ADD COLUMN): what was read before is committed as
            // read, and the message just polled is read again, against the new definition.
            if !batch.is_empty() {
                let offsets = std::mem::take(&mut batch.next_offsets);
                committer.send(batch, Box::new(move |p| p.offsets.extend(offsets)))?;
            }
            return Ok(Ended::Reconnect);
        }
        match polled {
            Some(Ok(message)) => {
                let point = Point::Kafka { partition: message.partition(), offset: message.offset() };
                let micros = message.timestamp().to_millis().map(|ms| ms.saturating_mul(1000));
                batch.push(point, message.payload(), micros, reader.rows(message.payload()));
            }
            Some(Err(KafkaError::MessageConsumption(RDKafkaErrorCode::AutoOffsetReset))) => {
                // The stored offset is gone (retention, a recreated topic): skipping to
                // either end would lose or repeat messages silently.
                return Err(Error::internal(format!(
                    "a stored offset of topic \"{}\" is out of range on the brokers ({}); \
                     DROP SOURCE and create it again to choose where to start",
                    options.topic,
                    source.report.lock().position.text(source.def.kind)
                )));
            }
            Some(Err(e)) => {
                // librdkafka reconnects by itself; the source says so meanwhile.
                source.report.lock().retrying(format!("Kafka: {e}"));
            }
            None => {}
        }
        let due = batch.started.is_some_and(|s| batch.len() >= options.batch_rows || s.elapsed() >= batch_time);
        if due {
            let offsets = std::mem::take(&mut batch.next_offsets);
            let full = std::mem::replace(&mut batch, PendingBatch::new(def, options.columns.clone()));
            committer.send(full, Box::new(move |p| p.offsets.extend(offsets)))?;
        }
        // Between batches (right after one is handed over, or idle), so that `lag` stays
        // current under a steady load too, where a batch is open nearly all the time.
        if batch.is_empty() && lag_at.elapsed() >= LAG_EVERY {
            lag_at = Instant::now();
            let offsets = source.report.lock().position.offsets.clone();
            if let Some(lag) = lag(consumer, options, partitions, &offsets) {
                source.report.lock().lag = Some(lag);
            }
            let retrying = source.report.lock().state == SourceState::Retrying;
            if retrying || topic_at.elapsed() >= TOPIC_EVERY {
                topic_at = Instant::now();
                // The brokers answer again; and partitions added since are read from their start.
                if let Ok(metadata) = consumer.fetch_metadata(Some(&options.topic), LAG_EVERY) {
                    source.report.lock().running();
                    let now =
                        metadata.topics().iter().find(|t| t.name() == options.topic).map(|t| t.partitions().len());
                    if now.is_some_and(|n| n > partitions.len()) {
                        return Ok(Ended::Reconnect);
                    }
                }
            }
        }
    }
    Ok(Ended::Stopped)
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
