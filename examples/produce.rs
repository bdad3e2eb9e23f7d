//! Sample producer for the quickstart: creates the topic if needed and
//! produces a small JSON record (with `"ts"`, the send time in unix ns) to a
//! rotating partition at a fixed rate.
//!
//! `cargo run --release --example produce -- --brokers 127.0.0.1:9092 --topic items --rate 2`

#[path = "../perf/args.rs"]
mod args;
use args::arg;

use std::collections::BTreeMap;
use std::time::Duration;

use rskafka::chrono::Utc;
use rskafka::client::partition::{Compression, UnknownTopicHandling};
use rskafka::client::ClientBuilder;
use rskafka::record::Record;

fn main() -> anyhow::Result<()> {
    let brokers = arg("--brokers", "127.0.0.1:9092");
    let topic = arg("--topic", "items");
    let partitions: i32 = arg("--partitions", "4").parse()?;
    let rate: f64 = arg("--rate", "2").parse()?;
    let count: u64 = arg("--count", "0").parse()?; // 0 = forever
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let client = ClientBuilder::new(brokers.split(',').map(str::to_owned).collect())
            .build()
            .await?;
        let exists = client.list_topics().await?.iter().any(|t| t.name == topic);
        if !exists {
            client
                .controller_client()?
                .create_topic(&topic, partitions, 1, 5_000)
                .await?;
        }
        let mut clients = Vec::new();
        for p in 0..partitions {
            clients.push(
                client
                    .partition_client(topic.clone(), p, UnknownTopicHandling::Retry)
                    .await?,
            );
        }
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        let mut seq = 0u64;
        while count == 0 || seq < count {
            tick.tick().await;
            let p = (seq % partitions as u64) as usize;
            let value = format!(
                "{{\"seq\":{seq},\"ts\":{},\"item\":\"item-{}\"}}",
                Utc::now().timestamp_nanos_opt().unwrap_or_default(),
                seq % 10
            );
            let record = Record {
                key: Some(format!("item-{}", seq % 10).into_bytes()),
                value: Some(value.into_bytes()),
                headers: BTreeMap::new(),
                timestamp: Utc::now(),
            };
            clients[p]
                .produce(vec![record], Compression::NoCompression)
                .await?;
            seq += 1;
        }
        anyhow::Ok(())
    })
}
