//! A Kafka client (rskafka) on its own current-thread tokio runtime, with
//! blocking calls: create, list and delete topics, produce records (with
//! keys, headers, compression; stamped now), delete records. Every
//! [`Broker`](super::Broker) holds one; a test that produces from another
//! thread connects its own.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use rskafka::chrono::Utc;
use rskafka::client::partition::{Compression, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::Record;

/// A record's key and value, either of which may be null.
pub type KeyValue = (Option<Vec<u8>>, Option<Vec<u8>>);

/// A producer with its own Kafka client, for use from another thread.
pub struct ProducerOnly {
    rt: tokio::runtime::Runtime,
    client: Client,
}

impl ProducerOnly {
    pub fn create_topic(&self, name: &str, partitions: i32) {
        self.rt
            .block_on(async {
                self.client
                    .controller_client()?
                    .create_topic(name, partitions, 1, 5_000)
                    .await
            })
            .expect("create topic");
    }

    /// The topics the broker lists (a metadata request that creates none).
    pub fn topics(&self) -> Vec<String> {
        self.rt
            .block_on(self.client.list_topics())
            .expect("list topics")
            .into_iter()
            .map(|t| t.name)
            .collect()
    }

    pub fn delete_topic(&self, name: &str) {
        self.rt
            .block_on(async {
                self.client
                    .controller_client()?
                    .delete_topic(name, 5_000)
                    .await
            })
            .expect("delete topic");
    }

    /// Kafka DeleteRecords: the partition's earliest offset becomes
    /// `offset`, as retention would make it.
    pub fn delete_records(&self, topic: &str, partition: i32, offset: i64) {
        self.rt
            .block_on(async {
                self.client
                    .partition_client(topic, partition, UnknownTopicHandling::Retry)
                    .await?
                    .delete_records(offset, 5_000)
                    .await
            })
            .expect("delete records");
    }

    pub fn connect(addr: SocketAddr) -> ProducerOnly {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = rt
            .block_on(ClientBuilder::new(vec![addr.to_string()]).build())
            .unwrap();
        ProducerOnly { rt, client }
    }

    pub fn produce(&self, topic: &str, partition: i32, value: Vec<u8>) -> i64 {
        self.produce_records(
            topic,
            partition,
            vec![(None, Some(value))],
            Compression::NoCompression,
        )[0]
    }

    /// Produces records with headers; returns their offsets.
    pub fn produce_with_headers(
        &self,
        topic: &str,
        partition: i32,
        records: Vec<(KeyValue, Vec<(&str, &str)>)>,
    ) -> Vec<i64> {
        let records = records
            .into_iter()
            .map(|((key, value), headers)| {
                let headers = headers
                    .into_iter()
                    .map(|(n, v)| (n.to_owned(), v.as_bytes().to_vec()))
                    .collect();
                ((key, value), headers)
            })
            .collect();
        self.produce_built(topic, partition, records, Compression::NoCompression)
    }

    /// Produces records with current timestamps (the broker's retention
    /// deletes old ones); returns their offsets.
    pub fn produce_records(
        &self,
        topic: &str,
        partition: i32,
        records: Vec<KeyValue>,
        compression: Compression,
    ) -> Vec<i64> {
        let records = records
            .into_iter()
            .map(|kv| (kv, BTreeMap::new()))
            .collect();
        self.produce_built(topic, partition, records, compression)
    }

    /// Produces ((key, value), headers) records stamped now.
    fn produce_built(
        &self,
        topic: &str,
        partition: i32,
        records: Vec<(KeyValue, BTreeMap<String, Vec<u8>>)>,
        compression: Compression,
    ) -> Vec<i64> {
        self.rt
            .block_on(async {
                let pc = self
                    .client
                    .partition_client(topic, partition, UnknownTopicHandling::Retry)
                    .await?;
                let records = records
                    .into_iter()
                    .map(|((key, value), headers)| Record {
                        key,
                        value,
                        headers,
                        timestamp: Utc::now(),
                    })
                    .collect();
                pc.produce(records, compression).await
            })
            .expect("produce")
    }
}
