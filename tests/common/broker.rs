//! The nisshi broker: a real Kafka-protocol broker process on an ephemeral
//! port, in memory, killed when its [`Broker`] drops. A [`Broker`] carries
//! its own [`ProducerOnly`] client, so tests create topics, produce and
//! delete records through it directly.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use rskafka::client::partition::Compression;

use super::corrupter;
use super::producer::{KeyValue, ProducerOnly};
use super::{free_port, wait_until};

/// The nisshi binary: `$NISSHI_BIN`, else `~/.cargo/bin/nisshi`. Missing is
/// a test failure with instructions, never a silent skip.
fn nisshi_bin() -> PathBuf {
    if let Ok(p) = std::env::var("NISSHI_BIN") {
        return PathBuf::from(p);
    }
    let home = std::env::var("HOME").expect("HOME is set");
    let p = PathBuf::from(home).join(".cargo/bin/nisshi");
    assert!(
        p.exists(),
        "the nisshi broker is not installed at {}; run examples/install-nisshi.sh (see README)",
        p.display()
    );
    p
}

/// Starts a nisshi broker on `addr` with `storage` (a `--storage-engine`
/// URL, relative paths resolved in `dir`, where it also reads `.env`) and
/// waits until it accepts connections.
pub fn spawn_nisshi(addr: SocketAddr, storage: &str, dir: &std::path::Path) -> Child {
    spawn_nisshi_advertising(addr, addr, storage, dir)
}

/// [`spawn_nisshi`], telling clients to connect to `advertised` instead.
fn spawn_nisshi_advertising(
    addr: SocketAddr,
    advertised: SocketAddr,
    storage: &str,
    dir: &std::path::Path,
) -> Child {
    let url = format!("tcp://{addr}");
    let advertised = format!("tcp://{advertised}");
    let child = Command::new(nisshi_bin())
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &advertised,
        ])
        .args(["--storage-engine", storage])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nisshi");
    wait_until("the broker to accept connections", || {
        TcpStream::connect(addr).is_ok()
    });
    child
}

pub struct Broker {
    child: Child,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
    producer: ProducerOnly,
    /// The requests that passed the middle, for a broker started with one.
    requests: Option<Arc<corrupter::Requests>>,
}

impl Broker {
    pub fn start() -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = spawn_nisshi(addr, "memory://nisshi/", dir.path());
        Broker {
            child,
            addr,
            _dir: dir,
            producer: ProducerOnly::connect(addr),
            requests: None,
        }
    }

    /// A broker whose clients reach it through a [`corrupter`]: each
    /// record batch holding `marker` arrives with a bad checksum. `addr`
    /// is the corrupter's.
    pub fn start_corrupting(marker: &'static [u8]) -> Broker {
        Self::start_behind_middle(Some(marker))
    }

    /// A broker whose clients reach it through a middle that counts their
    /// requests (see [`Broker::requests`]).
    pub fn start_counting() -> Broker {
        Self::start_behind_middle(None)
    }

    /// Requests of this Kafka API key its clients sent so far (a broker
    /// started behind a middle only).
    pub fn requests(&self, api_key: i16) -> u64 {
        self.requests
            .as_ref()
            .expect("a broker started behind a middle")
            .of(api_key)
    }

    fn start_behind_middle(marker: Option<&'static [u8]>) -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let real: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let middle = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = middle.local_addr().unwrap();
        let child = spawn_nisshi_advertising(real, addr, "memory://nisshi/", dir.path());
        let requests = corrupter::spawn(middle, real, marker);
        Broker {
            child,
            addr,
            _dir: dir,
            producer: ProducerOnly::connect(addr),
            requests: Some(requests),
        }
    }

    pub fn create_topic(&self, name: &str, partitions: i32) {
        self.producer.create_topic(name, partitions);
    }

    /// Produces one record; returns its offset.
    pub fn produce(
        &self,
        topic: &str,
        partition: i32,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> i64 {
        self.produce_many(
            topic,
            partition,
            vec![(key.map(<[u8]>::to_vec), value.map(<[u8]>::to_vec))],
        )[0]
    }

    /// Produces records with headers; returns their offsets.
    pub fn produce_with_headers(
        &self,
        topic: &str,
        partition: i32,
        records: Vec<(KeyValue, Vec<(&str, &str)>)>,
    ) -> Vec<i64> {
        self.producer
            .produce_with_headers(topic, partition, records)
    }

    /// The topics the broker lists (a metadata request that creates none).
    pub fn topics(&self) -> Vec<String> {
        self.producer.topics()
    }

    pub fn produce_many(&self, topic: &str, partition: i32, records: Vec<KeyValue>) -> Vec<i64> {
        self.produce_compressed(topic, partition, records, Compression::NoCompression)
    }

    pub fn produce_compressed(
        &self,
        topic: &str,
        partition: i32,
        records: Vec<KeyValue>,
        compression: Compression,
    ) -> Vec<i64> {
        self.producer
            .produce_records(topic, partition, records, compression)
    }

    /// Kafka DeleteRecords: the partition's earliest offset becomes
    /// `offset`, as retention would make it.
    pub fn delete_records(&self, topic: &str, partition: i32, offset: i64) {
        self.producer.delete_records(topic, partition, offset);
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
