//! The event-id decoder on any bytes, in both forms (progress alone, and
//! Zilla's `[key,"progress"]`): it never panics, respects its bounds, and
//! every id it accepts re-encodes to an id that decodes to the same
//! progress, plain and keyed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sse_kafka::codec::event_id::{
    decode, decode_progress, encode_key_and_position, encode_key_and_progress, encode_progress,
    encode_sparse, topic_hash, IdError, Progress, MAX_ID_BYTES, MAX_PARTITIONS,
};
use sse_kafka::model::{Offset, Partition};

/// The topic the committed seeds were encoded for (`corpus/event_id/`).
const TOPIC: &str = "orders";

fuzz_target!(|data: &[u8]| {
    let hash = topic_hash(TOPIC);
    let decoded = decode(hash, data);
    // The progress-only decoder is `decode` restricted to version 1.
    match (&decoded, decode_progress(hash, data)) {
        (Ok(Progress::All(a)), Ok(b)) => assert_eq!(*a, b),
        (Ok(Progress::Some(_)), Err(IdError::Version(2))) => {}
        (Err(a), Err(b)) => assert_eq!(*a, b),
        (a, b) => panic!("decode {a:?} but decode_progress {b:?}"),
    }
    if data.len() > MAX_ID_BYTES {
        assert!(matches!(decoded, Err(IdError::TooLong { .. })));
    }
    let Ok(progress) = decoded else {
        return;
    };
    let (mut scratch, mut id) = (Vec::new(), Vec::new());
    match &progress {
        Progress::All(position) => {
            assert!(position.len() <= MAX_PARTITIONS);
            assert!(position.offsets().iter().all(|o| o.0 >= 0));
            encode_progress(hash, position.offsets(), &mut scratch, &mut id);
        }
        Progress::Some(pairs) => {
            assert!(pairs.len() <= MAX_PARTITIONS);
            assert!(pairs.windows(2).all(|w| w[0].0 < w[1].0), "{pairs:?}");
            assert!(pairs
                .iter()
                .all(|(p, o)| p.index() < MAX_PARTITIONS && o.0 >= 0));
            let partitions: Vec<Partition> = pairs.iter().map(|&(p, _)| p).collect();
            // The encoder reads offsets by partition index.
            let mut next = vec![Offset::ZERO; partitions.last().map_or(0, |p| p.index() + 1)];
            for &(p, o) in pairs {
                next[p.index()] = o;
            }
            encode_sparse(hash, &partitions, &next, &mut scratch, &mut id);
            let mut keyed = Vec::new();
            encode_key_and_position(
                None,
                hash,
                Some(&partitions),
                &next,
                &mut scratch,
                &mut keyed,
            );
            if keyed.len() <= MAX_ID_BYTES {
                assert_eq!(decode(hash, &keyed).as_ref(), Ok(&progress));
            }
        }
    }
    // Canonical varints are never longer than the ones decoded, so the
    // re-encoded id is within the bound whenever the input was.
    assert!(id.len() <= MAX_ID_BYTES);
    assert_eq!(
        decode(hash, &id).as_ref(),
        Ok(&progress),
        "re-encoded {id:?}"
    );
    // The same progress inside the keyed form, with a key made of the input.
    if let Progress::All(position) = &progress {
        let mut keyed = Vec::new();
        encode_key_and_progress(
            Some(data),
            hash,
            position.offsets(),
            &mut scratch,
            &mut keyed,
        );
        if keyed.len() <= MAX_ID_BYTES {
            assert_eq!(decode_progress(hash, &keyed).as_ref(), Ok(position));
        }
    }
    // The keyed form wraps the progress text the decoder just accepted.
    let mut wrapped = b"[null,\"".to_vec();
    wrapped.extend_from_slice(&id);
    wrapped.extend_from_slice(b"\"]");
    if wrapped.len() <= MAX_ID_BYTES {
        assert_eq!(decode(hash, &wrapped).as_ref(), Ok(&progress));
    }
});
