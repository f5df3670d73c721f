//! `kafka_version()`: which kafkars and which librdkafka this extension is.
//!
//! Returns `STRUCT(kafkars VARCHAR, librdkafka VARCHAR)`, e.g.
//! `{'kafkars': 0.1.0, 'librdkafka': 2.12.1}`. The kafkars version is the Cargo workspace's,
//! the same one the extension's metadata footer and the Python package's `__version__` carry.

use crate::capi::{DataChunk, LogicalType, ScalarFunction, Vector};

pub struct KafkaVersion;

impl ScalarFunction for KafkaVersion {
    const NAME: &'static str = "kafka_version";

    fn parameters() -> Vec<LogicalType> {
        Vec::new()
    }

    fn return_type() -> LogicalType {
        LogicalType::structure(&[
            ("kafkars", LogicalType::varchar()),
            ("librdkafka", LogicalType::varchar()),
        ])
    }

    fn execute(input: &DataChunk, output: Vector) -> Result<(), String> {
        let librdkafka = kafkars_core::librdkafka_version();
        let (kafkars, rdkafka) = (output.struct_field(0), output.struct_field(1));
        for row in 0..input.len() {
            kafkars.set_bytes(row, kafkars_core::VERSION.as_bytes());
            rdkafka.set_bytes(row, librdkafka.as_bytes());
        }
        Ok(())
    }
}
