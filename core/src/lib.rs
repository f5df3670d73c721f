//! The kafkars engine.
//!
//! kafkars reads Apache Kafka topics for analytics. This crate owns every Kafka rule; the DuckDB
//! extension (`extension/`) and the Python package (`python/`) are thin skins over it and know
//! nothing of Kafka themselves.
//!
//! # No side effects
//!
//! kafkars never commits offsets, never joins a consumer group and never creates or alters
//! topics. [`ClientSettings`] enforces that for every client this crate creates: it forces
//! `enable.auto.commit`, `enable.auto.offset.store` and `allow.auto.create.topics` off and
//! refuses a user-supplied `config` that would turn any of them back on.
//!
//! # Metadata
//!
//! [`MetadataClient`] answers the questions a user asks before reading: which topics exist
//! ([`MetadataClient::topics`]) and, per partition of a topic, its leader, replicas and
//! watermarks ([`MetadataClient::partitions`]). Watermarks of all partitions of a topic are
//! fetched in one batched `ListOffsets` request per leader broker, never one round trip per
//! partition.
//!
//! ```no_run
//! use std::time::Duration;
//! use kafkars_core::{ClientSettings, MetadataClient};
//!
//! let settings = ClientSettings::builder()
//!     .brokers("127.0.0.1:19092")
//!     .timeout(Duration::from_secs(5))
//!     .build()?;
//! let client = MetadataClient::connect(&settings)?;
//! for partition in client.partitions("events")? {
//!     println!("{} [{}..{})", partition.partition, partition.low_watermark, partition.high_watermark);
//! }
//! # Ok::<(), kafkars_core::Error>(())
//! ```

pub mod batch;
mod chunk;
pub mod decode;
mod error;
mod fetch;
mod memory;
mod merge;
mod message;
mod metadata;
mod pattern;
mod record;
mod resolve;
mod scan;
mod selection;
mod settings;
mod topic_name;
mod watch;

pub use decode::{
    DecodeParameters, DecodeSpec, DecodedColumns, OnError, PayloadDecoders, PayloadFormat,
    PayloadSpec, RegistrySettings, Side,
};
pub use error::{Error, Result};
pub use fetch::BudgetSplit;
pub use merge::OrderedMerge;
pub use metadata::{MetadataClient, PartitionInfo, TopicInfo};
pub use pattern::{resolve_topic_pattern, TopicPattern};
pub use record::{Fields, Header, HeaderRef, Record, TimestampType};
pub use resolve::{
    bound_range, coalesce_ranges, default_split_size, resolve_offsets, resolve_plan, split_ranges,
    PartitionRange, PlannedRange, MIN_DEFAULT_SPLIT_SIZE,
};
pub use scan::{
    plan_scan, plan_scan_with_notes, PartitionState, Scan, ScanOptions, DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_BUFFER_BYTES, DEFAULT_METADATA_REFRESH, MIN_MAX_BUFFER_BYTES,
};
pub use selection::{
    OnMissing, ScanSelection, StartPolicy, TopicSelection, EARLIEST_OFFSET, END_OFFSET,
};
pub use settings::{
    duration_from_micros, positive_duration_from_micros, ClientSettings, ClientSettingsBuilder,
    DEFAULT_BROKERS, DEFAULT_TIMEOUT,
};
pub use topic_name::{parse_topic_list, validate_topic_name};
pub use watch::Watch;

/// The kafkars version, e.g. `"0.1.0"`: the Cargo workspace's, the one source of the Python
/// package's `__version__`, the extension's metadata footer and SQL `kafka_version()`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The version of librdkafka linked into this build, e.g. `"2.12.1"`.
pub fn librdkafka_version() -> String {
    rdkafka::util::get_rdkafka_version().1
}
