//! Microbenchmarks of the hot path, each beside a baseline measured in the
//! same run (these machines are shared and noisy: compare ratios, not
//! absolute times).
//!
//! `cargo bench --bench hot_path` — groups: `http_parse`, `frame_encode`,
//! `event_id`, `fanout`, `filters`, `jwt_verify`. In each group the
//! `baseline` entry is the least any implementation must do (find the
//! head's end, copy the bytes, push one pointer per connection); in
//! `filters` the baseline is the same records delivered to 100 connections
//! instead of 10,000 (the cost of a record must grow with the distinct
//! filters, not the connections); in `jwt_verify` it is what a guard's
//! token cache costs a connect that hits it (one hash map lookup of a
//! 1 KiB token), beside the signature check a miss costs.

use std::collections::{HashMap, VecDeque};
use std::hint::black_box;
use std::rc::Rc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rskafka::chrono::DateTime;
use sse_kafka::codec::sse::Render;
use sse_kafka::codec::sse::ValueEncoding;
use sse_kafka::codec::{event_id, http, sse};
use sse_kafka::config::EventIdForm;
use sse_kafka::model::{Offset, Partition, TopicId};
use sse_kafka::model::{Record, RecordAndOffset};
use sse_kafka::ops::metrics::ShardMetrics;
use sse_kafka::shard::audiences::Selection;
use sse_kafka::shard::hub::Hub;
use sse_kafka::shard::outbox::Outbox;

fn http_parse(c: &mut Criterion) {
    let mut id = Vec::new();
    event_id::encode_progress(
        event_id::topic_hash("items"),
        &[1_000_000, 1_000_200, 999_980, 1_000_050].map(Offset),
        &mut Vec::new(),
        &mut id,
    );
    let request = format!(
        "GET /items?x=1 HTTP/1.1\r\nHost: sse.example.com\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\
         Origin: https://app.example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\nLast-Event-ID: {}\r\n\r\n",
        String::from_utf8(id).unwrap()
    );
    let bytes = request.as_bytes();
    let mut g = c.benchmark_group("http_parse");
    g.bench_function("baseline_find_head_end", |b| {
        b.iter(|| memchr::memmem::find(black_box(bytes), b"\r\n\r\n"))
    });
    g.bench_function("parse_request", |b| {
        b.iter(|| {
            http::parse_request(black_box(bytes))
                .unwrap()
                .unwrap()
                .head_len
        })
    });
    g.finish();
}

fn frame_encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame_encode");
    let id = b"ATp5M48EAAoDyg8";
    for lines in [1usize, 5, 50] {
        let value: Vec<u8> = (0..lines)
            .flat_map(|i| {
                format!("{{\"line\":{i},\"payload\":\"{}\"}}\n", "x".repeat(120)).into_bytes()
            })
            .collect();
        let mut out = Vec::with_capacity(value.len() * 2);
        g.bench_with_input(BenchmarkId::new("baseline_copy", lines), &value, |b, v| {
            b.iter(|| {
                out.clear();
                out.extend_from_slice(black_box(v));
                out.len()
            })
        });
        g.bench_with_input(BenchmarkId::new("encode_record", lines), &value, |b, v| {
            b.iter(|| {
                out.clear();
                sse::encode_record(&mut out, id, None, Some(black_box(v)), ValueEncoding::Text);
                out.len()
            })
        });
    }
    g.finish();
}

fn ids(c: &mut Criterion) {
    let mut g = c.benchmark_group("event_id");
    let hash = event_id::topic_hash("items");
    for partitions in [4usize, 64, 1024] {
        let offsets: Vec<Offset> = (0..partitions as i64)
            .map(|p| Offset(5_000_000 + p * 37 % 1000))
            .collect();
        let mut scratch = Vec::new();
        let mut out = Vec::new();
        event_id::encode_progress(hash, &offsets, &mut scratch, &mut out);
        let encoded = out.clone();
        let mut copy: Vec<Offset> = Vec::with_capacity(partitions);
        g.bench_with_input(
            BenchmarkId::new("baseline_copy_offsets", partitions),
            &offsets,
            |b, o| {
                b.iter(|| {
                    copy.clear();
                    copy.extend_from_slice(black_box(o));
                    copy.len()
                })
            },
        );
        g.bench_with_input(BenchmarkId::new("encode", partitions), &offsets, |b, o| {
            b.iter(|| {
                out.clear();
                event_id::encode_progress(hash, black_box(o), &mut scratch, &mut out);
                out.len()
            })
        });
        g.bench_with_input(BenchmarkId::new("decode", partitions), &encoded, |b, e| {
            b.iter(|| event_id::decode_progress(hash, black_box(e)).unwrap().len())
        });
    }
    g.finish();
}

const FANOUT_CONNECTIONS: usize = 10_000;

fn record(offset: i64) -> RecordAndOffset {
    RecordAndOffset {
        record: Record {
            key: Some(b"item-7".to_vec()),
            value: Some(
                format!("{{\"seq\":{offset},\"payload\":\"{}\"}}", "x".repeat(120)).into_bytes(),
            ),
            headers: Default::default(),
            timestamp: DateTime::from_timestamp(0, 0).unwrap(),
        },
        offset: Offset(offset),
    }
}

/// One record to 10,000 live connections of one shard (in-memory sinks).
fn fanout(c: &mut Criterion) {
    let mut g = c.benchmark_group("fanout");
    g.measurement_time(Duration::from_secs(5));
    let frame: Rc<[u8]> = Rc::from(&b"id:ATp5M48EAAoDyg8\ndata:{\"seq\":1}\n\n"[..]);
    let mut queues: Vec<VecDeque<Rc<[u8]>>> = (0..FANOUT_CONNECTIONS)
        .map(|_| VecDeque::with_capacity(4))
        .collect();
    g.bench_function(
        BenchmarkId::new("baseline_push_pointer", FANOUT_CONNECTIONS),
        |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    for q in &mut queues {
                        q.push_back(Rc::clone(&frame));
                    }
                    total += start.elapsed();
                    queues.iter_mut().for_each(VecDeque::clear);
                }
                total
            })
        },
    );

    let topic = TopicId(0);
    let metrics = ShardMetrics::default();
    let mut hub = Hub::new(
        &["items".to_owned()],
        sse_kafka::shard::cache::Limits {
            partition_bytes: 0,
            total_bytes: 0,
            max_age: std::time::Duration::from_secs(1),
        },
        0,
        1,
    );
    hub.topic_mut(topic).set_partition_count(4);
    let render = Render {
        value: ValueEncoding::Text,
        id: EventIdForm::Progress,
    };
    let conns: Vec<Rc<Outbox>> = (0..FANOUT_CONNECTIONS)
        .map(|_| Rc::new(Outbox::in_memory(u32::MAX)))
        .collect();
    let stream = hub.topic_mut(topic);
    for p in 0..4 {
        stream.begin_batch(Partition(p), Offset(0), &metrics);
    }
    for conn in &conns {
        stream.join(Rc::clone(conn), render, &Default::default());
    }
    let mut offset = 0;
    g.bench_function(
        BenchmarkId::new("deliver_record", FANOUT_CONNECTIONS),
        |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let rec = record(offset);
                    offset += 1;
                    let start = Instant::now();
                    let reached = stream.deliver(Partition(1), &rec);
                    total += start.elapsed();
                    assert_eq!(reached, FANOUT_CONNECTIONS);
                    // One feed got the frame; the sinks skip it.
                    assert_eq!(stream.clear_pending_writes(), 1);
                }
                total
            })
        },
    );
    g.finish();
}

/// Distinct key filters in the `filters` group.
const FILTER_KEYS: usize = 100;
/// Records delivered per measured iteration in the `filters` group.
const FILTER_RECORDS: usize = 10_000;

fn keyed_record(offset: i64, key: &str) -> RecordAndOffset {
    let mut rec = record(offset);
    rec.record.key = Some(key.as_bytes().to_vec());
    rec
}

/// One shard, 100 distinct key filters (`/items/{id}`), 10,000 records on
/// four partitions: CPU time per record with 10,000 connections spread over
/// the filters, against the same run with 100 connections (one per
/// filter). Two key mixes: every record's key is one of the 100 (each
/// record goes to 1% of the connections), and one record in ten is (the
/// other keys nobody asked for).
fn filters(c: &mut Criterion) {
    use sse_kafka::codec::filter::{self, FilterSpec, Template, Vars};
    let mut g = c.benchmark_group("filters");
    g.measurement_time(Duration::from_secs(5));
    g.throughput(criterion::Throughput::Elements(FILTER_RECORDS as u64));
    let render = Render {
        value: ValueEncoding::Text,
        id: EventIdForm::Progress,
    };
    let no_params = sse_kafka::codec::router::Params::new();
    let key_filter = |k: usize| {
        let spec = FilterSpec {
            key: Some(Template::parse(&format!("item-{k}")).unwrap()),
            ..Default::default()
        };
        let vars = Vars {
            params: &no_params,
            query: None,
            guard: None,
        };
        filter::resolve(&[spec], &vars).unwrap().unwrap()
    };
    for (mix, key_space) in [
        ("all_keys_watched", FILTER_KEYS),
        ("one_in_ten_watched", FILTER_KEYS * 10),
    ] {
        let keys: Vec<String> = (0..key_space).map(|k| format!("item-{k}")).collect();
        for connections in [FILTER_KEYS, 100 * FILTER_KEYS] {
            let metrics = ShardMetrics::default();
            let topic = TopicId(0);
            let mut hub = Hub::new(
                &["items".to_owned()],
                sse_kafka::shard::cache::Limits {
                    partition_bytes: 0,
                    total_bytes: 0,
                    max_age: Duration::from_secs(1),
                },
                0,
                1,
            );
            hub.topic_mut(topic).set_partition_count(4);
            let stream = hub.topic_mut(topic);
            for p in 0..4 {
                stream.begin_batch(Partition(p), Offset(0), &metrics);
            }
            let conns: Vec<Rc<Outbox>> = (0..connections)
                .map(|_| Rc::new(Outbox::in_memory(u32::MAX)))
                .collect();
            for (i, conn) in conns.iter().enumerate() {
                let selection = stream.intern(Selection {
                    filter: Some(Rc::new(key_filter(i % FILTER_KEYS))),
                    ..Default::default()
                });
                stream.join(Rc::clone(conn), render, &selection);
            }
            assert_eq!(stream.audiences(), FILTER_KEYS);
            // Keys spread so that consecutive records go to different
            // filters, as unrelated items do.
            let mut records: Vec<RecordAndOffset> = (0..FILTER_RECORDS)
                .map(|i| keyed_record(0, &keys[(i * 7919) % key_space]))
                .collect();
            let mut offset = 0i64;
            let id = BenchmarkId::new(mix, format!("{connections}_connections"));
            g.bench_function(id, |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        // The records are reused; their offsets move on
                        // (the hub skips what it has delivered).
                        for (i, rec) in records.iter_mut().enumerate() {
                            rec.offset = Offset(offset + (i / 4) as i64);
                        }
                        offset += (FILTER_RECORDS / 4) as i64;
                        let start = Instant::now();
                        let mut pushed = 0;
                        for (i, rec) in records.iter().enumerate() {
                            pushed += stream.deliver(Partition((i % 4) as u32), black_box(rec));
                        }
                        total += start.elapsed();
                        assert!(pushed > 0);
                        stream.clear_pending_writes();
                    }
                    total
                })
            });
        }
    }
    g.finish();
}

// Keys for `jwt_verify`, generated for this bench; they protect nothing.
// jsonwebtoken signs with DER only without its `use_pem` feature: RSA as
// PKCS#1, EC and Ed25519 as PKCS#8. Each public half is the JWK beside it.
const RSA_PKCS1_DER: &str = "MIIEpAIBAAKCAQEAhJ7o11xqRdzXguywe64J5lcHMUJaG/pSvfLyzYNlMU+gpfDrxHY8+qCBrX7DcwidFV8RIZa5PjTZnhuzOVfd1kDb6gvut6f+StEk7VTcfpke5MCcn/2CCTGQefRGGWwUHd8S10WVvn6FWo2XqMV6i+vR62o/tBhEnKg3QUaRgbTW87A3k9HA81OXQ2+oYd1rzp5NCsn7D2KOQJto7oEIkR9DkOjOyhJ6h/Ay7zjifdNSEX1kfjHSdopSRggT4dePwEA2dCHV3wN3x16S/XNP7x+0+0uX0+k2o6e/RoRtEdzBXOf57d1rqsufIFMCEstFxUcYdZztoBsvNjI1fEhl0wIDAQABAoIBABMQeO5Eha5nUb+rYK9W1Gt9RTZqkGOHN4/AtfCfG9Pb238fQ/Uo/hkVK68SEuydZ19kHCVU8moj1MiquLfcjrI2/qYFcxqJlr+Qkxte4Jd+UXeWzK0fFytVKayuVclfxQCKSb4SbbVFoMvkoNGNGdG1Y6bQzjmIZ4yRjeffShl3/ZhnWN2GGXUzsU0/AitHkIDxpBaonsLsEUZgK+DokSlsuzEr9OBEICZcjxQkZkDbk+LHNdc6+OXbm6IBODQpBONJuBPWrYPaBZOy+eCrHMjvjIzPRKalb58HoZpIbB3Vi3AbuUE+LBvT3r1w7vjUm4+PEbrk5rBLzCqq7G2BfGECgYEAuZTEgk2UiJVSsSCrtUOwccYlx4+Cbkl1JynGKyOy47W8sIUpksadrVou9zEB6HbayklACSb5Ux7IUcwL8ab1F8BiDI+NsIgqHvzCbAxgUsdswPULXhxicamRiWrNUkHTra3BcVjPPiV/pl2qopyzPcpoqOHqiEWPUbc55hjm+QMCgYEAtvGanZUtu1yWHwnWy/QJfoQ217Mu1oHBDOqASmYB2lkQjGsRKSYvCUXdkC2/kPfXAWZ+nD7uzMOmPprzPguR3w9CNLhK9V0qcpYmgMlR4gHyOgpU8jnm2Nrpfjki8eHzryAGL/iNcrsum+2E2JtAUY+SSc6XbJOR6YxdLMjt/vECgYEAofY/+iiS9RC89nE46h2FJAZ2ek+42V+qqt8+X+/r8+dsIfJVcg99FQmb64gNzj/Meraq+FHXTr+SvDCETAYV6QCxkZzHX8W2XQzi8UFr31LEizJRFXVYRTJkHbXkM2HXx7/ZD38ef3JikWM1xG1V0RuRc7KW6Q8sIXjzQumAytkCgYEAjX5QF5FJzZ/OfDMf7p7QuQmJYUs07rNsnJDCqMg8pqQ8KF6m5yyhNIrU0q6Pe5A0uuCLDE2gZL7t1X4Co/pO2Db0/dGMKDnmmrmHDhSnQCZBMqLLEI23/gFSlk2auXoI/2nFX1TeEd60LeWG2gE5vdtNSch/VXrNX9UwO3MsoAECgYA3xLrJUQPx16AIXqkk00RW9z70QdJeui9EFzVzADm+PPKpiJBGNUChyYw2A8giNCs1OCc4LiHbnx1CnswD5ehb/oM8oqsDXf4WnAVGGKjXAhmuRIF1TIIurezaVuM++B19KtRHpsKMNT8S7c3IhQxLN3FAAweTWq2Z2VApGBr0Nw==";
const RSA_N: &str = "hJ7o11xqRdzXguywe64J5lcHMUJaG_pSvfLyzYNlMU-gpfDrxHY8-qCBrX7DcwidFV8RIZa5PjTZnhuzOVfd1kDb6gvut6f-StEk7VTcfpke5MCcn_2CCTGQefRGGWwUHd8S10WVvn6FWo2XqMV6i-vR62o_tBhEnKg3QUaRgbTW87A3k9HA81OXQ2-oYd1rzp5NCsn7D2KOQJto7oEIkR9DkOjOyhJ6h_Ay7zjifdNSEX1kfjHSdopSRggT4dePwEA2dCHV3wN3x16S_XNP7x-0-0uX0-k2o6e_RoRtEdzBXOf57d1rqsufIFMCEstFxUcYdZztoBsvNjI1fEhl0w";
const EC_PKCS8_DER: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgDQYuzPnpClD3UCEf/2wymR/tbrCmHNRREetOJgia3ZahRANCAARon1rPQ4OBb+tCbyphQ8Jo1n/vXXOthS+28GP07WKL2g32s5vGJAXsUTCHLENOY58jfK3ClCJ3HLhWEwxDI4PI";
const EC_X: &str = "aJ9az0ODgW_rQm8qYUPCaNZ_711zrYUvtvBj9O1ii9o";
const EC_Y: &str = "Dfazm8YkBexRMIcsQ05jnyN8rcKUInccuFYTDEMjg8g";
/// Ed25519 with the seed 00 01 .. 1f (src/codec/jwt/tests.rs's key).
const ED_PKCS8_DER: &str = "MC4CAQAwBQYDK2VwBCIEIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f";
const ED_X: &str = "A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg";
const HS_SECRET: &[u8] = b"a secret of at least thirty-two bytes";

/// One signature check per algorithm — what a guard pays for a token it
/// has not verified yet — against a lookup in a full token cache (4,096
/// tokens of about 1 KiB, the size of an identity provider's access token
/// with a few roles), which is all a connect with a remembered token costs.
fn jwt_verify(c: &mut Criterion) {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    use sse_kafka::codec::jwt::{self, KeySet, Rules};
    use sse_kafka::guard::MAX_CACHED_TOKENS;

    let der = |b64: &str| STANDARD.decode(b64).unwrap();
    let jwks = serde_json::json!({"keys": [
        {"kty": "RSA", "kid": "rsa", "alg": "RS256", "n": RSA_N, "e": "AQAB"},
        {"kty": "EC", "kid": "ec", "alg": "ES256", "crv": "P-256", "x": EC_X, "y": EC_Y},
        {"kty": "OKP", "kid": "ed", "alg": "EdDSA", "crv": "Ed25519", "x": ED_X},
    ]});
    let keys = KeySet::from_jwks(jwks.to_string().as_bytes()).unwrap();
    let secret = KeySet::from_secret(HS_SECRET).unwrap();
    let (issuers, audiences) = (
        vec!["https://auth.example.com/".to_owned()],
        vec!["sse-kafka".to_owned()],
    );
    let rules = Rules {
        issuers: &issuers,
        audiences: &audiences,
        leeway: 60,
    };
    let now = jsonwebtoken::get_current_timestamp();
    // An access token's usual claims, a few roles and a profile.
    let claims = serde_json::json!({
        "iss": "https://auth.example.com/", "aud": "sse-kafka", "azp": "web-app",
        "sub": "f3b1c0de-7a2e-4c55-9e61-000000000042", "jti": "5f0c8a9e2b7d4e1fa3c6b8d0e9f1a2b3",
        "iat": now, "nbf": now, "exp": now + 3600,
        "scope": "openid profile email orders:read notifications:read",
        "realm_access": {"roles": ["offline_access", "uma_authorization", "orders-reader", "default-roles-shop"]},
        "name": "Alice Example", "email": "alice@example.com", "email_verified": true,
        "tenant": {"id": "tenant-0042", "plan": "enterprise"},
    });
    let sign = |alg: Algorithm, kid: Option<&str>, key: &EncodingKey| {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        encode(&header, &claims, key).unwrap().into_bytes()
    };
    let cases = [
        (
            "RS256",
            sign(
                Algorithm::RS256,
                Some("rsa"),
                &EncodingKey::from_rsa_der(&der(RSA_PKCS1_DER)),
            ),
            &keys,
        ),
        (
            "ES256",
            sign(
                Algorithm::ES256,
                Some("ec"),
                &EncodingKey::from_ec_der(&der(EC_PKCS8_DER)),
            ),
            &keys,
        ),
        (
            "EdDSA",
            sign(
                Algorithm::EdDSA,
                Some("ed"),
                &EncodingKey::from_ed_der(&der(ED_PKCS8_DER)),
            ),
            &keys,
        ),
        (
            "HS256",
            sign(
                Algorithm::HS256,
                None,
                &EncodingKey::from_secret(HS_SECRET).unwrap(),
            ),
            &secret,
        ),
    ];
    for (alg, token, keys) in &cases {
        // A token that does not verify would measure a refusal instead.
        jwt::verify(token, keys, &rules).unwrap_or_else(|e| panic!("{alg}: {e:?}"));
    }

    // A full cache, as a shard's guard keeps it: token bytes to what
    // verifying them gave. The other entries are the RS256 token with the
    // end of its signature changed (never verified: a lookup only hashes
    // and compares bytes, and signing 4,096 tokens would slow every run).
    let hit = cases[0].1.clone();
    let verified = Rc::new(jwt::verify(&hit, &keys, &rules).unwrap());
    let mut cached: HashMap<Box<[u8]>, Rc<jwt::Verified>> = (1..MAX_CACHED_TOKENS)
        .map(|n| {
            let mut token = hit.clone();
            let end = token.len() - 8;
            token[end..].copy_from_slice(format!("{n:08}").as_bytes());
            (token.into_boxed_slice(), Rc::clone(&verified))
        })
        .collect();
    cached.insert(hit.clone().into_boxed_slice(), verified);
    assert_eq!(cached.len(), MAX_CACHED_TOKENS);

    let mut g = c.benchmark_group("jwt_verify");
    g.bench_with_input(
        BenchmarkId::new("baseline_cache_hit", hit.len()),
        &hit,
        |b, t| b.iter(|| Rc::clone(&cached[black_box(t.as_slice())])),
    );
    for (alg, token, keys) in &cases {
        g.bench_with_input(BenchmarkId::new(*alg, token.len()), token, |b, t| {
            b.iter(|| jwt::verify(black_box(t), keys, &rules).unwrap().expires_at)
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    http_parse,
    frame_encode,
    ids,
    fanout,
    filters,
    jwt_verify
);
criterion_main!(benches);
