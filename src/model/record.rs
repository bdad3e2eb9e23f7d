//! A fetched Kafka record, as the proxy keeps it: like rskafka's `Record`,
//! except that the headers are the list Kafka sent, in order. A header name
//! may repeat within one record, and a filter matches any occurrence;
//! rskafka's client collapses headers into a map (the last value wins),
//! which is why fetches have their own decoding (see [`crate::kafka::fetcher`]).

use rskafka::chrono::{DateTime, Utc};

use super::ids::Offset;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: Option<Vec<u8>>,
    /// `None` is a tombstone.
    pub value: Option<Vec<u8>>,
    /// Name and value of every header, in the record's order; names repeat.
    pub headers: Vec<(String, Vec<u8>)>,
    pub timestamp: DateTime<Utc>,
}

impl Record {
    /// Every value of header `name`, in order.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordAndOffset {
    pub record: Record,
    pub offset: Offset,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_header_keeps_every_value_in_order() {
        let r = Record {
            key: None,
            value: None,
            headers: vec![
                ("tag".into(), b"a".to_vec()),
                ("other".into(), b"x".to_vec()),
                ("tag".into(), b"b".to_vec()),
            ],
            timestamp: DateTime::from_timestamp(0, 0).unwrap(),
        };
        assert_eq!(r.header_values("tag").collect::<Vec<_>>(), [b"a", b"b"]);
        assert_eq!(r.header_values("other").collect::<Vec<_>>(), [b"x"]);
        assert_eq!(r.header_values("none").count(), 0);
    }
}
