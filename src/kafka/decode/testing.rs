//! Record batches as Kafka clients write them (magic 2, zig-zag varints,
//! crc32c over the batch from its attributes on), with the knobs the
//! decoder's tests need: codec, transactions, control markers, null header
//! values.

use std::io::Write;

/// One record of a batch.
#[derive(Debug, Clone, Default)]
pub struct Rec {
    pub offset_delta: i32,
    pub timestamp_delta: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    /// `None` writes a null header value (length -1).
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Rec {
    /// A record at `delta` with key `k<delta>` and no value.
    pub fn at(delta: i32) -> Self {
        Self {
            offset_delta: delta,
            timestamp_delta: i64::from(delta) * 10,
            key: Some(format!("k{delta}").into_bytes()),
            ..Self::default()
        }
    }

    pub fn header(mut self, name: &str, value: Option<&str>) -> Self {
        self.headers
            .push((name.to_owned(), value.map(|v| v.as_bytes().to_vec())));
        self
    }
}

/// A batch's framing.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub base: i64,
    pub codec: i16,
    pub producer_id: i64,
    pub transactional: bool,
    pub first_timestamp: i64,
}

impl Spec {
    pub fn at(base: i64) -> Self {
        Self {
            base,
            codec: 0,
            producer_id: -1,
            transactional: false,
            first_timestamp: 1_700_000_000_000,
        }
    }

    pub fn codec(self, codec: i16) -> Self {
        Self { codec, ..self }
    }

    pub fn txn(self, producer_id: i64) -> Self {
        Self {
            producer_id,
            transactional: true,
            ..self
        }
    }
}

fn zigzag(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        let byte = (z & 0x7f) as u8;
        z >>= 7;
        if z == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => zigzag(out, -1),
        Some(b) => {
            zigzag(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

/// One record's bytes, its length prefix included.
pub fn record(r: &Rec) -> Vec<u8> {
    let mut body = vec![0u8]; // attributes
    zigzag(&mut body, r.timestamp_delta);
    zigzag(&mut body, i64::from(r.offset_delta));
    bytes(&mut body, r.key.as_deref());
    bytes(&mut body, r.value.as_deref());
    zigzag(&mut body, r.headers.len() as i64);
    for (name, value) in &r.headers {
        bytes(&mut body, Some(name.as_bytes()));
        bytes(&mut body, value.as_deref());
    }
    let mut out = Vec::new();
    zigzag(&mut out, body.len() as i64);
    out.extend(body);
    out
}

fn compress(codec: i16, raw: &[u8]) -> Vec<u8> {
    match codec {
        0 => raw.to_vec(),
        1 => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(raw).unwrap();
            e.finish().unwrap()
        }
        2 => snap::raw::Encoder::new().compress_vec(raw).unwrap(),
        3 => {
            let mut e = lz4::EncoderBuilder::new().build(Vec::new()).unwrap();
            e.write_all(raw).unwrap();
            let (out, result) = e.finish();
            result.unwrap();
            out
        }
        4 => zstd::encode_all(raw, 0).unwrap(),
        other => raw.iter().copied().chain([other as u8]).collect(),
    }
}

/// A batch of `records` (already encoded) with `count` records claimed.
pub fn batch_of(spec: Spec, last_delta: i32, count: i32, control: bool, raw: &[u8]) -> Vec<u8> {
    let mut attributes = spec.codec;
    if spec.transactional {
        attributes |= 0x10;
    }
    if control {
        attributes |= 0x20;
    }
    let mut checked = Vec::new();
    checked.extend(attributes.to_be_bytes());
    checked.extend(last_delta.to_be_bytes());
    checked.extend(spec.first_timestamp.to_be_bytes());
    checked.extend(spec.first_timestamp.to_be_bytes()); // max timestamp
    checked.extend(spec.producer_id.to_be_bytes());
    checked.extend(0i16.to_be_bytes()); // producer epoch
    checked.extend((-1i32).to_be_bytes()); // base sequence
    checked.extend(count.to_be_bytes());
    checked.extend(compress(spec.codec, raw));
    let mut out = Vec::new();
    out.extend(spec.base.to_be_bytes());
    out.extend(((4 + 1 + 4 + checked.len()) as i32).to_be_bytes());
    out.extend(0i32.to_be_bytes()); // leader epoch
    out.push(2); // magic
    out.extend(crc32c::crc32c(&checked).to_be_bytes());
    out.extend(checked);
    out
}

/// A data batch of `records`.
pub fn batch(spec: Spec, records: &[Rec]) -> Vec<u8> {
    let last = records.iter().map(|r| r.offset_delta).max().unwrap_or(0);
    let raw: Vec<u8> = records.iter().flat_map(record).collect();
    batch_of(spec, last, records.len() as i32, false, &raw)
}

/// A transaction marker: `commit` or abort.
pub fn marker(spec: Spec, commit: bool) -> Vec<u8> {
    let key = [0, 0, 0, u8::from(commit)];
    let r = Rec {
        key: Some(key.to_vec()),
        value: Some(vec![0, 0, 0, 0, 0, 0]),
        ..Rec::default()
    };
    batch_of(spec, 0, 1, true, &record(&r))
}
