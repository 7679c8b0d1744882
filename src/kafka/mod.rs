//! The Kafka bridge, behind the `kafka` feature (docs/scaling.md).
//!
//! * [`Mirror`] copies a store topic into a Kafka topic and keeps following it, exactly once
//!   across crashes: every Kafka record carries its source's identity and its tidelog offset
//!   in headers, and a restarted mirror resumes after the highest offset the destination
//!   already holds. Each mirrored record's Kafka partition and offset go into an exact offset
//!   map ([`OffsetMap`]) from which [`translate_group`] moves a consumer group from tidelog to
//!   Kafka without skipping or re-reading.
//! * [`Import`] follows a Kafka topic into a store topic, carrying the Kafka topic, partition
//!   and offset in headers, and resumes exactly after a restart from what the store topic
//!   already holds.
//!
//! Built on librdkafka (the `rdkafka` crate, bundled and linked statically) through its
//! blocking producer, consumer and admin client. Nothing else in the crate imports this
//! module; it uses the store, consumer and log only through their public API.

mod client;
mod headers;
mod import;
mod mirror;
mod offset_map;
mod partition;
mod resume;
mod translate;

pub use headers::{
    IMPORT_OFFSET_HEADER, IMPORT_PARTITION_HEADER, IMPORT_TIMESTAMP_HEADER, IMPORT_TOPIC_HEADER, OFFSET_HEADER,
    SOURCE_HEADER, TIMESTAMP_HEADER,
};
pub use import::{Import, ImportOptions, ImportReport};
pub use mirror::{Mirror, MirrorOptions, MirrorReport, Resumed};
pub use offset_map::{MappedRun, OffsetMap, OFFSET_MAP_VERSION};
pub use partition::partition_for;
pub use translate::{translate_group, TranslatedPartition, Translation};
