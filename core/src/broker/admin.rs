//! The small request/response APIs: ApiVersions, Metadata, ListOffsets,
//! CreateTopics, DeleteTopics.

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::{Broker, Overrides, valid_topic_name};
use crate::protocol::{self, APIS, Request};

/// The cluster id Metadata reports: a single-node cluster of its own.
const CLUSTER_ID: &str = "conveyor-single-node";

fn api_keys() -> Vec<ApiVersion> {
    APIS.iter()
        .map(|a| {
            ApiVersion::default()
                .with_api_key(a.key as i16)
                .with_min_version(a.min)
                .with_max_version(a.max)
        })
        .collect()
}

/// The ApiVersions answer.
pub(super) fn api_versions(request: &Request) -> Option<Bytes> {
    // The body (client software name and version at v3) is informational;
    // a body that does not decode is still a client worth answering.
    let response = ApiVersionsResponse::default().with_api_keys(api_keys());
    Some(protocol::encode_response(
        ApiKey::ApiVersions,
        request.version,
        request.correlation_id,
        &response,
    ))
}

/// The answer to an ApiVersions version this broker does not know: a v0
/// response with UNSUPPORTED_VERSION and the supported keys, so the client
/// retries with one it and the broker share.
pub(super) fn api_versions_unsupported(correlation_id: i32) -> Bytes {
    let response = ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(api_keys());
    protocol::encode_response(ApiKey::ApiVersions, 0, correlation_id, &response)
}

impl Broker {
    pub(super) fn metadata(&mut self, request: &Request) -> Option<Bytes> {
        let req: MetadataRequest =
            protocol::decode(ApiKey::Metadata, &request.body, request.version)?;
        // v0 has no null: an empty list means every topic. v4+ lets the
        // client ask that nothing be created.
        let allow_create = request.version < 4 || req.allow_auto_topic_creation;
        let names: Vec<String> = match &req.topics {
            Some(list) if !(request.version == 0 && list.is_empty()) => list
                .iter()
                .filter_map(|t| t.name.as_ref().map(|n| n.0.as_str().to_owned()))
                .collect(),
            _ => self.topics.keys().cloned().collect(),
        };
        let v = request.version;
        let node = BrokerId(self.config.node_id);
        let mut response = MetadataResponse::default().with_brokers(vec![
            MetadataResponseBroker::default()
                .with_node_id(node)
                .with_host(StrBytes::from_string(self.config.advertised_host.clone()))
                .with_port(i32::from(self.config.advertised_port)),
        ]);
        // kafka-protocol refuses to encode a field the version lacks, so
        // each one is set only where its version has it.
        if v >= 1 {
            response.controller_id = node;
        }
        if v >= 2 {
            response.cluster_id = Some(StrBytes::from_static_str(CLUSTER_ID));
        }
        if (8..=10).contains(&v) {
            response.cluster_authorized_operations = i32::MIN;
        }
        for name in names {
            let mut t = MetadataResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_string(name.clone()))));
            if v >= 8 {
                t.topic_authorized_operations = i32::MIN;
            }
            if !self.topics.contains_key(&name) {
                if !valid_topic_name(&name) {
                    t.error_code = ResponseError::InvalidTopicException.code();
                    response.topics.push(t);
                    continue;
                }
                if !(allow_create && self.config.auto_create_topics)
                    || name == "__consumer_offsets"
                    || self.lifecycle.shutting_down()
                {
                    t.error_code = ResponseError::UnknownTopicOrPartition.code();
                    response.topics.push(t);
                    continue;
                }
                let partitions = self.config.num_partitions;
                tracing::info!(topic = %name, partitions, "auto-creating topic");
                self.create_topic(&name, partitions, Vec::new());
            }
            let Some(topic) = self.topics.get(&name) else {
                continue;
            };
            if v >= 10 {
                t.topic_id = topic.id;
            }
            if v >= 1 {
                t.is_internal = name.starts_with("__");
            }
            for (index, &key) in topic.partitions.iter().enumerate() {
                let offline = self.log(key).is_none_or(|l| l.offline().is_some());
                let mut p = MetadataResponsePartition::default()
                    .with_partition_index(index as i32)
                    .with_leader_id(node)
                    .with_replica_nodes(vec![node])
                    .with_isr_nodes(vec![node]);
                if offline {
                    p.error_code = ResponseError::KafkaStorageError.code();
                }
                if v >= 7 {
                    p.leader_epoch = 0;
                }
                t.partitions.push(p);
            }
            response.topics.push(t);
        }
        Some(protocol::encode_response(
            ApiKey::Metadata,
            request.version,
            request.correlation_id,
            &response,
        ))
    }

    pub(super) fn create_topics(&mut self, request: &Request) -> Option<Bytes> {
        let req: CreateTopicsRequest =
            protocol::decode(ApiKey::CreateTopics, &request.body, request.version)?;
        let mut response = CreateTopicsResponse::default();
        for topic in &req.topics {
            let name = topic.name.0.as_str();
            let v = request.version;
            let mut r = CreatableTopicResult::default().with_name(topic.name.clone());
            if v >= 5 {
                r.num_partitions = -1;
                r.replication_factor = -1;
            }
            match self.check_new_topic(topic) {
                Err((code, message)) => {
                    r.error_code = code;
                    r.error_message = Some(StrBytes::from_string(message));
                }
                Ok((partitions, overrides)) => {
                    if v >= 5 {
                        r.num_partitions = partitions;
                        r.replication_factor = 1;
                    }
                    if !req.validate_only {
                        tracing::info!(topic = name, partitions, "creating topic");
                        let id = self.create_topic(name, partitions, overrides);
                        if v >= 7 {
                            r.topic_id = id;
                        }
                    }
                }
            }
            response.topics.push(r);
        }
        Some(protocol::encode_response(
            ApiKey::CreateTopics,
            request.version,
            request.correlation_id,
            &response,
        ))
    }

    /// Check a CreateTopics entry; the partition count and the topic
    /// settings it overrides, or the error code and message.
    fn check_new_topic(
        &self,
        topic: &kafka_protocol::messages::create_topics_request::CreatableTopic,
    ) -> Result<(i32, Overrides), (i16, String)> {
        let name = topic.name.0.as_str();
        if !valid_topic_name(name) || name == "__consumer_offsets" {
            return Err((
                ResponseError::InvalidTopicException.code(),
                format!("topic name `{name}` is not valid: 1-249 of [a-zA-Z0-9._-]"),
            ));
        }
        if self.topics.contains_key(name) {
            return Err((
                ResponseError::TopicAlreadyExists.code(),
                format!("topic `{name}` already exists"),
            ));
        }
        if self.lifecycle.shutting_down() {
            return Err((
                ResponseError::BrokerNotAvailable.code(),
                "the broker is shutting down".to_owned(),
            ));
        }
        if !matches!(topic.replication_factor, -1 | 1) {
            return Err((
                ResponseError::InvalidReplicationFactor.code(),
                format!(
                    "replication factor {} is larger than the 1 broker available",
                    topic.replication_factor
                ),
            ));
        }
        let partitions = if !topic.assignments.is_empty() {
            let node = self.config.node_id;
            if topic
                .assignments
                .iter()
                .any(|a| a.broker_ids.iter().any(|b| b.0 != node))
            {
                return Err((
                    ResponseError::InvalidReplicaAssignment.code(),
                    format!("assignments may name only broker {node}"),
                ));
            }
            topic.assignments.len() as i32
        } else if topic.num_partitions == -1 {
            self.config.num_partitions
        } else {
            topic.num_partitions
        };
        if !(1..=100_000).contains(&partitions) {
            return Err((
                ResponseError::InvalidPartitions.code(),
                format!("{partitions} partitions: must be 1 to 100000"),
            ));
        }
        let mut config = self.config.topic_defaults.clone();
        let mut overrides = Vec::new();
        for c in &topic.configs {
            let Some(value) = &c.value else { continue };
            let (key, value) = (c.name.as_str(), value.as_str());
            config
                .set(key, value)
                .map_err(|e| (ResponseError::InvalidConfig.code(), e.to_string()))?;
            // Stored one `topic key=value` line each.
            if key.contains(['\n', '=', ' ']) || value.contains('\n') {
                return Err((
                    ResponseError::InvalidConfig.code(),
                    format!("configuration `{key}` has a value that cannot be stored"),
                ));
            }
            overrides.push((key.to_owned(), value.to_owned()));
        }
        Ok((partitions, overrides))
    }

    pub(super) fn delete_topics(&mut self, request: &Request) -> Option<Bytes> {
        let req: DeleteTopicsRequest =
            protocol::decode(ApiKey::DeleteTopics, &request.body, request.version)?;
        // v6 names topics in `topics` (by name or id); earlier versions in
        // `topic_names`.
        let mut wanted: Vec<(Option<TopicName>, uuid::Uuid)> = req
            .topic_names
            .iter()
            .map(|n| (Some(n.clone()), uuid::Uuid::nil()))
            .collect();
        wanted.extend(req.topics.iter().map(|t| (t.name.clone(), t.topic_id)));
        let mut response = DeleteTopicsResponse::default();
        for (name, id) in wanted {
            let resolved = match &name {
                Some(n) => Some(n.0.as_str().to_owned()),
                None => self
                    .topics
                    .iter()
                    .find(|(_, t)| t.id == id)
                    .map(|(n, _)| n.clone()),
            };
            let v = request.version;
            // Before v6 the name is the key and never null.
            let mut r =
                DeletableTopicResult::default().with_name(Some(name.clone().unwrap_or_default()));
            if v >= 6 {
                r.topic_id = id;
            }
            match resolved {
                Some(n) if self.topics.contains_key(&n) => {
                    tracing::info!(topic = %n, "deleting topic");
                    if v >= 6 {
                        r.topic_id = self.topics[&n].id;
                        r.name = Some(TopicName(StrBytes::from_string(n.clone())));
                    }
                    self.delete_topic(&n);
                }
                _ => r.error_code = ResponseError::UnknownTopicOrPartition.code(),
            }
            response.responses.push(r);
        }
        Some(protocol::encode_response(
            ApiKey::DeleteTopics,
            request.version,
            request.correlation_id,
            &response,
        ))
    }
}
