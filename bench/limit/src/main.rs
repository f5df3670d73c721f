//! `kafkars-limit`: how fast this machine can move a topic through librdkafka at all.
//!
//! ```text
//! kafkars-limit [--brokers HOST:PORT,...] [--batch N] [--timeout-ms MS] [-X key=value]... TOPIC[,TOPIC...]
//! ```
//!
//! It assigns every partition of the topics from its low watermark to its high watermark (as
//! they are when it starts), drains them with `rd_kafka_consume_batch_queue` and counts
//! messages and payload bytes (key + value). Nothing is copied, ordered or converted, so no
//! reader built on librdkafka can be faster on the same machine: the benchmarks divide every
//! figure by this one. It prints one JSON object on stdout:
//!
//! ```text
//! {"messages": 2000000, "bytes": 200000000, "seconds": 1.23, "baseline_kib": 5120,
//!  "peak_kib": 90000, "partitions": 8, "librdkafka": "2.12.1"}
//! ```
//!
//! `seconds` runs from creating the consumer to the last message, so it includes the metadata
//! and watermark requests, as a scan's time does. Errors go to stderr with exit status 1.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::fmt;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use rdkafka::bindings as rdsys;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};

/// Consumer settings at least as generous as the engine's at its default budget: 50 MiB
/// fetches, 64 MiB prefetch queues per partition, and a short back-off when a queue was full.
/// Partition fetches stay at librdkafka's 1 MiB: on the benchmark machine they were as fast
/// as 8 MiB or faster (10-30 %), with a third of the memory (`-X` overrides any of these).
const DEFAULT_CONFIG: [(&str, &str); 8] = [
    ("fetch.max.bytes", "52428800"),
    ("max.partition.fetch.bytes", "1048576"),
    ("queued.max.messages.kbytes", "65536"),
    ("fetch.queue.backoff.ms", "10"),
    ("enable.partition.eof", "true"),
    ("auto.offset.reset", "error"),
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
];

/// Why a run failed.
#[derive(Debug)]
enum LimitError {
    /// A command-line argument is missing or malformed; the text says which and why.
    Usage(String),
    /// librdkafka refused the configuration.
    Client { brokers: String, source: KafkaError },
    /// Metadata or watermarks of a topic could not be read.
    Metadata {
        topic: String,
        partition: Option<i32>,
        brokers: String,
        reason: String,
    },
    /// The brokers know no such topic.
    UnknownTopic { topic: String, brokers: String },
    /// Assigning the partitions failed.
    Assign { brokers: String, source: KafkaError },
    /// The batch call itself failed.
    Consume { reason: String },
    /// A partition-level error arrived in place of a message.
    Partition {
        topic: String,
        partition: i32,
        reason: String,
    },
    /// No message arrived for `idle` while partitions were still short of their end.
    Stalled {
        idle: Duration,
        missing: Vec<String>,
    },
}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(text) => write!(f, "{text}"),
            Self::Client { brokers, source } => {
                write!(f, "cannot create a consumer for {brokers}: {source}")
            }
            Self::Metadata {
                topic,
                partition: Some(partition),
                brokers,
                reason,
            } => write!(
                f,
                "cannot read the watermarks of {topic}[{partition}] from {brokers}: {reason}"
            ),
            Self::Metadata {
                topic,
                partition: None,
                brokers,
                reason,
            } => write!(
                f,
                "cannot read the metadata of {topic} from {brokers}: {reason}"
            ),
            Self::UnknownTopic { topic, brokers } => {
                write!(f, "topic {topic} does not exist on {brokers}")
            }
            Self::Assign { brokers, source } => {
                write!(f, "cannot assign the partitions on {brokers}: {source}")
            }
            Self::Consume { reason } => write!(f, "rd_kafka_consume_batch_queue failed: {reason}"),
            Self::Partition {
                topic,
                partition,
                reason,
            } => write!(f, "{topic}[{partition}]: {reason}"),
            Self::Stalled { idle, missing } => write!(
                f,
                "no message for {:.1} s while these partitions were short of their end: {}",
                idle.as_secs_f64(),
                missing.join(", ")
            ),
        }
    }
}

impl std::error::Error for LimitError {}

/// The parsed command line.
struct Args {
    brokers: String,
    topics: Vec<String>,
    batch: usize,
    timeout: Duration,
    config: Vec<(String, String)>,
}

impl Args {
    fn parse(mut raw: impl Iterator<Item = String>) -> Result<Self, LimitError> {
        let mut args = Args {
            brokers: std::env::var("KAFKA_BOOTSTRAP_SERVERS")
                .unwrap_or_else(|_| "127.0.0.1:19092".to_string()),
            topics: Vec::new(),
            batch: 10_000,
            timeout: Duration::from_secs(30),
            config: Vec::new(),
        };
        while let Some(arg) = raw.next() {
            let mut value = |name: &str| {
                raw.next()
                    .ok_or_else(|| LimitError::Usage(format!("{name} needs a value")))
            };
            match arg.as_str() {
                "--brokers" => args.brokers = value("--brokers")?,
                "--batch" => args.batch = positive("--batch", &value("--batch")?)?,
                "--timeout-ms" => {
                    let ms = positive("--timeout-ms", &value("--timeout-ms")?)?;
                    args.timeout = Duration::from_millis(ms as u64);
                }
                "-X" => {
                    let pair = value("-X")?;
                    let (key, val) = pair.split_once('=').ok_or_else(|| {
                        LimitError::Usage(format!("-X expects key=value, found {pair:?}"))
                    })?;
                    args.config.push((key.to_string(), val.to_string()));
                }
                flag if flag.starts_with('-') => {
                    return Err(LimitError::Usage(format!(
                        "unknown option {flag}; expected --brokers, --batch, --timeout-ms or -X"
                    )))
                }
                topics => args.topics.extend(
                    topics
                        .split(',')
                        .filter(|name| !name.is_empty())
                        .map(str::to_string),
                ),
            }
        }
        if args.topics.is_empty() {
            return Err(LimitError::Usage(
                "usage: kafkars-limit [--brokers B] [--batch N] [--timeout-ms MS] [-X k=v]... TOPIC[,TOPIC...]"
                    .to_string(),
            ));
        }
        Ok(args)
    }
}

fn positive(name: &str, text: &str) -> Result<usize, LimitError> {
    match text.parse::<usize>() {
        Ok(value) if value > 0 => Ok(value),
        _ => Err(LimitError::Usage(format!(
            "{name} expects a positive integer, found {text:?}"
        ))),
    }
}

/// One assigned partition: where its range ends and how far it got.
struct Range {
    topic: String,
    partition: i32,
    stop: i64,
    next: i64,
}

impl Range {
    fn done(&self) -> bool {
        self.next >= self.stop
    }
}

/// What a run counted.
struct Counts {
    messages: u64,
    bytes: u64,
    seconds: f64,
    partitions: usize,
}

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(error) => {
            eprintln!("kafkars-limit: {error}");
            return ExitCode::from(2);
        }
    };
    let baseline_kib = proc_status_kib("VmRSS");
    match run(&args) {
        Ok(counts) => {
            println!(
                "{{\"messages\": {}, \"bytes\": {}, \"seconds\": {:.6}, \"baseline_kib\": {}, \
                 \"peak_kib\": {}, \"partitions\": {}, \"librdkafka\": \"{}\"}}",
                counts.messages,
                counts.bytes,
                counts.seconds,
                json_number(baseline_kib),
                json_number(proc_status_kib("VmHWM")),
                counts.partitions,
                librdkafka_version()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("kafkars-limit: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<Counts, LimitError> {
    let started = Instant::now();
    let consumer = create_consumer(args)?;
    let mut ranges = plan(&consumer, args)?;
    let mut assignment = TopicPartitionList::new();
    for range in &ranges {
        if !range.done() {
            assignment
                .add_partition_offset(&range.topic, range.partition, Offset::Offset(range.next))
                .map_err(|source| LimitError::Assign {
                    brokers: args.brokers.clone(),
                    source,
                })?;
        }
    }
    consumer
        .assign(&assignment)
        .map_err(|source| LimitError::Assign {
            brokers: args.brokers.clone(),
            source,
        })?;
    let (messages, bytes) = drain(&consumer, &mut ranges, args)?;
    Ok(Counts {
        messages,
        bytes,
        seconds: started.elapsed().as_secs_f64(),
        partitions: ranges.len(),
    })
}

fn create_consumer(args: &Args) -> Result<BaseConsumer, LimitError> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &args.brokers);
    // assign() wants a group.id; no group is joined and nothing is committed.
    config.set("group.id", format!("kafkars-limit-{}", std::process::id()));
    for (key, value) in DEFAULT_CONFIG {
        config.set(key, value);
    }
    for (key, value) in &args.config {
        config.set(key, value);
    }
    config.create().map_err(|source| LimitError::Client {
        brokers: args.brokers.clone(),
        source,
    })
}

/// Every partition of every topic with its low and high watermark.
fn plan(consumer: &BaseConsumer, args: &Args) -> Result<Vec<Range>, LimitError> {
    let mut ranges = Vec::new();
    for topic in &args.topics {
        let metadata = consumer
            .fetch_metadata(Some(topic), args.timeout)
            .map_err(|error| LimitError::Metadata {
                topic: topic.clone(),
                partition: None,
                brokers: args.brokers.clone(),
                reason: error.to_string(),
            })?;
        let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
            return Err(LimitError::UnknownTopic {
                topic: topic.clone(),
                brokers: args.brokers.clone(),
            });
        };
        if found.error().is_some() || found.partitions().is_empty() {
            return Err(LimitError::UnknownTopic {
                topic: topic.clone(),
                brokers: args.brokers.clone(),
            });
        }
        for partition in found.partitions() {
            let id = partition.id();
            let (low, high) =
                consumer
                    .fetch_watermarks(topic, id, args.timeout)
                    .map_err(|error| LimitError::Metadata {
                        topic: topic.clone(),
                        partition: Some(id),
                        brokers: args.brokers.clone(),
                        reason: error.to_string(),
                    })?;
            ranges.push(Range {
                topic: topic.clone(),
                partition: id,
                stop: high,
                next: low,
            });
        }
    }
    ranges.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Ok(ranges)
}

/// The consumer queue, destroyed when dropped.
struct Queue(*mut rdsys::rd_kafka_queue_t);

impl Drop for Queue {
    fn drop(&mut self) {
        // SAFETY: the pointer came from rd_kafka_queue_get_consumer and is destroyed once.
        unsafe { rdsys::rd_kafka_queue_destroy(self.0) }
    }
}

/// Drain the assigned partitions to their stops, counting messages and key + value bytes.
///
/// librdkafka 2.12.1's batch call moves a partition's position to offset + 1 on an EOF or
/// error message, so the end is decided only from real messages (`next = offset + 1`) and
/// from EOF events at or past the stop, never from the position.
fn drain(
    consumer: &BaseConsumer,
    ranges: &mut [Range],
    args: &Args,
) -> Result<(u64, u64), LimitError> {
    let mut router = Router::new(ranges, &args.topics);
    let mut remaining = ranges.iter().filter(|range| !range.done()).count();
    // SAFETY: the consumer outlives the queue, which is dropped at the end of this function.
    let queue =
        Queue(unsafe { rdsys::rd_kafka_queue_get_consumer(consumer.client().native_ptr()) });
    if queue.0.is_null() {
        return Err(LimitError::Consume {
            reason: "the consumer has no queue".to_string(),
        });
    }
    let mut buffer: Vec<*mut rdsys::rd_kafka_message_t> = vec![std::ptr::null_mut(); args.batch];
    let (mut messages, mut bytes) = (0u64, 0u64);
    let mut last_progress = Instant::now();
    while remaining > 0 {
        // SAFETY: the buffer holds `batch` slots; librdkafka fills the first `count`.
        let count = unsafe {
            rdsys::rd_kafka_consume_batch_queue(queue.0, 100, buffer.as_mut_ptr(), buffer.len())
        };
        if count < 0 {
            // SAFETY: reads a thread-local error code and its static description.
            let reason =
                unsafe { CStr::from_ptr(rdsys::rd_kafka_err2str(rdsys::rd_kafka_last_error())) };
            return Err(LimitError::Consume {
                reason: reason.to_string_lossy().into_owned(),
            });
        }
        let mut failure = None;
        for &message in &buffer[..count as usize] {
            // SAFETY: each pointer is a live message owned by us until destroyed below.
            let m = unsafe { &*message };
            let slot = router.find(m);
            match m.err {
                rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR => {
                    messages += 1;
                    bytes += (m.len + m.key_len) as u64;
                    if let Some(i) = slot {
                        let range = &mut ranges[i];
                        let was_done = range.done();
                        range.next = range.next.max(m.offset + 1);
                        if !was_done && range.done() {
                            remaining -= 1;
                        }
                    }
                }
                rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__PARTITION_EOF => {
                    if let Some(i) = slot {
                        let range = &mut ranges[i];
                        if !range.done() && m.offset >= range.stop {
                            range.next = range.stop;
                            remaining -= 1;
                        }
                    }
                }
                _ if failure.is_none() => {
                    // SAFETY: the message is live; the text is copied before it is destroyed.
                    let reason = unsafe { CStr::from_ptr(rdsys::rd_kafka_message_errstr(message)) }
                        .to_string_lossy()
                        .into_owned();
                    let (topic, partition) = match slot {
                        Some(i) => (ranges[i].topic.clone(), ranges[i].partition),
                        None => ("(client)".to_string(), m.partition),
                    };
                    failure = Some(LimitError::Partition {
                        topic,
                        partition,
                        reason,
                    });
                }
                _ => {}
            }
            // SAFETY: returned by the batch call, destroyed exactly once.
            unsafe { rdsys::rd_kafka_message_destroy(message) };
        }
        if let Some(error) = failure {
            return Err(error);
        }
        if count > 0 {
            last_progress = Instant::now();
        } else if last_progress.elapsed() > args.timeout {
            return Err(LimitError::Stalled {
                idle: last_progress.elapsed(),
                missing: ranges
                    .iter()
                    .filter(|range| !range.done())
                    .map(|range| {
                        format!(
                            "{}[{}] at {} of {}",
                            range.topic, range.partition, range.next, range.stop
                        )
                    })
                    .collect(),
            });
        }
    }
    Ok((messages, bytes))
}

/// Finds the range of a message without allocating: topic handles are matched by pointer
/// after the first comparison of their names.
struct Router {
    names: Vec<CString>,
    handles: Vec<(*const rdsys::rd_kafka_topic_t, usize)>,
    index: HashMap<(usize, i32), usize>,
}

impl Router {
    fn new(ranges: &[Range], topics: &[String]) -> Self {
        let names: Vec<CString> = topics
            .iter()
            .map(|topic| CString::new(topic.as_str()).unwrap_or_default())
            .collect();
        let index = ranges
            .iter()
            .enumerate()
            .filter_map(|(i, range)| {
                let topic = topics.iter().position(|t| *t == range.topic)?;
                Some(((topic, range.partition), i))
            })
            .collect();
        Self {
            names,
            handles: Vec::new(),
            index,
        }
    }

    /// The range index of a message; `None` for client-level events.
    fn find(&mut self, message: &rdsys::rd_kafka_message_t) -> Option<usize> {
        let handle = message.rkt as *const rdsys::rd_kafka_topic_t;
        if handle.is_null() {
            return None;
        }
        let topic = match self.handles.iter().find(|(h, _)| *h == handle) {
            Some(&(_, topic)) => topic,
            None => {
                // SAFETY: a message's topic handle lives as long as the message.
                let name = unsafe { CStr::from_ptr(rdsys::rd_kafka_topic_name(message.rkt)) };
                let topic = self.names.iter().position(|n| n.as_c_str() == name)?;
                self.handles.push((handle, topic));
                topic
            }
        };
        self.index.get(&(topic, message.partition)).copied()
    }
}

/// A field of /proc/self/status in KiB (Linux), e.g. `VmRSS` or the peak `VmHWM`.
fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

fn json_number(value: Option<u64>) -> String {
    value.map_or_else(|| "null".to_string(), |v| v.to_string())
}

fn librdkafka_version() -> String {
    // SAFETY: librdkafka returns a static NUL-terminated string.
    unsafe { CStr::from_ptr(rdsys::rd_kafka_version_str()) }
        .to_string_lossy()
        .into_owned()
}
