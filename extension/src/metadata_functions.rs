//! `kafka_topics()` and `kafka_partitions(topic)`: what the cluster holds, for the SQL prompt.
//!
//! Bind checks the arguments without touching the network; init asks the cluster (so a
//! failure shows as an Invalid Input Error naming the brokers or the topic); scan hands the
//! rows out a chunk at a time.

use kafkars_core::{ClientSettings, MetadataClient, PartitionInfo, TopicInfo};

use crate::capi::{BindInput, Column, DataChunk, InitInput, LogicalType, TableFunction};
use crate::params;
use crate::rows::{error_text, Rows};

/// `kafka_topics(brokers, timeout, config)`: one row per topic of the cluster.
pub struct KafkaTopics;

impl TableFunction for KafkaTopics {
    type BindData = ClientSettings;
    type State = Rows<TopicInfo>;
    type LocalState = ();

    const NAME: &'static str = "kafka_topics";

    fn positional() -> Vec<LogicalType> {
        Vec::new()
    }

    fn named() -> Vec<(&'static str, LogicalType)> {
        params::client_parameters()
    }

    fn bind(input: &BindInput) -> Result<(Vec<Column>, ClientSettings), String> {
        let settings = params::client_settings(input).map_err(|e| error_text(Self::NAME, e))?;
        let columns = vec![
            Column::new("topic", LogicalType::varchar()),
            Column::new("partitions", LogicalType::integer()),
            Column::new("replication_factor", LogicalType::integer()),
            Column::new("internal", LogicalType::boolean()),
        ];
        Ok((columns, settings))
    }

    fn init(settings: &ClientSettings, _: &InitInput) -> Result<Rows<TopicInfo>, String> {
        MetadataClient::connect(settings)
            .and_then(|client| client.topics())
            .map(Rows::new)
            .map_err(|e| error_text(Self::NAME, e))
    }

    fn scan(
        _: &ClientSettings,
        rows: &Rows<TopicInfo>,
        _: &mut (),
        output: &mut DataChunk,
    ) -> Result<(), String> {
        rows.emit(output, 4, |row, topic, columns| {
            columns[0].set_bytes(row, topic.name.as_bytes());
            // SAFETY: the column types are the ones declared in bind.
            unsafe {
                columns[1].set::<i32>(row, topic.partitions);
                columns[2].set::<i32>(row, topic.replication_factor);
                columns[3].set::<bool>(row, topic.internal);
            }
        });
        Ok(())
    }
}

/// What `kafka_partitions` needs after bind.
pub struct PartitionsRequest {
    settings: ClientSettings,
    topic: String,
}

/// `kafka_partitions(topic, brokers, timeout, config)`: one row per partition of a topic.
pub struct KafkaPartitions;

impl TableFunction for KafkaPartitions {
    type BindData = PartitionsRequest;
    type State = Rows<PartitionInfo>;
    type LocalState = ();

    const NAME: &'static str = "kafka_partitions";

    fn positional() -> Vec<LogicalType> {
        vec![LogicalType::varchar()]
    }

    fn named() -> Vec<(&'static str, LogicalType)> {
        params::client_parameters()
    }

    fn bind(input: &BindInput) -> Result<(Vec<Column>, PartitionsRequest), String> {
        let request = params::required_text(input, 0, "topic")
            .and_then(|topic| {
                if topic.contains(',') {
                    return Err(kafkars_core::Error::InvalidParameter {
                        parameter: "topic".into(),
                        reason: format!(
                            "kafka_partitions takes one topic, found the list '{topic}'; \
                             call it once per topic"
                        ),
                    });
                }
                kafkars_core::validate_topic_name("topic", &topic)?;
                Ok(PartitionsRequest {
                    settings: params::client_settings(input)?,
                    topic,
                })
            })
            .map_err(|e| error_text(Self::NAME, e))?;
        let broker_ids = || LogicalType::list(&LogicalType::integer());
        let columns = vec![
            Column::new("partition", LogicalType::integer()),
            Column::new("leader", LogicalType::integer()),
            Column::new("low_watermark", LogicalType::bigint()),
            Column::new("high_watermark", LogicalType::bigint()),
            Column::new("replicas", broker_ids()),
            Column::new("in_sync_replicas", broker_ids()),
        ];
        Ok((columns, request))
    }

    fn init(request: &PartitionsRequest, _: &InitInput) -> Result<Rows<PartitionInfo>, String> {
        MetadataClient::connect(&request.settings)
            .and_then(|client| client.partitions(&request.topic))
            .map(Rows::new)
            .map_err(|e| error_text(Self::NAME, e))
    }

    fn scan(
        _: &PartitionsRequest,
        rows: &Rows<PartitionInfo>,
        _: &mut (),
        output: &mut DataChunk,
    ) -> Result<(), String> {
        let mut replicas = output.vector(4).list();
        let mut in_sync = output.vector(5).list();
        rows.emit(output, 4, |row, partition, columns| {
            // SAFETY: the column types are the ones declared in bind.
            unsafe {
                columns[0].set::<i32>(row, partition.partition);
                match partition.leader {
                    Some(leader) => columns[1].set::<i32>(row, leader),
                    None => columns[1].set_null(row),
                }
                columns[2].set::<i64>(row, partition.low_watermark);
                columns[3].set::<i64>(row, partition.high_watermark);
                replicas.set::<i32>(row, &partition.replicas);
                in_sync.set::<i32>(row, &partition.in_sync_replicas);
            }
        });
        Ok(())
    }
}
