//! `parse_request` on any bytes: it never panics, every size it reports is
//! bounded, and it is a push parser whose answer does not depend on how the
//! head was split into reads (a prefix of a complete head is incomplete, and
//! the head alone parses to the same head).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sse_kafka::codec::http::{
    parse_request, query_param, Method, RequestError, MAX_HEAD_BYTES, MAX_REQUEST_LINE,
};

fuzz_target!(|data: &[u8]| {
    match parse_request(data) {
        Ok(Some(head)) => {
            assert!(head.head_len <= data.len().min(MAX_HEAD_BYTES));
            assert!(
                head.path.starts_with('/') || (head.path == "*" && head.method == Method::Options),
                "path {:?}",
                head.path
            );
            assert!(!head.query.is_some_and(|q| q.contains('#')));
            // The head alone, without what follows it, is the same head.
            assert_eq!(
                parse_request(&data[..head.head_len]),
                Ok(Some(head.clone()))
            );
            // Any shorter prefix is still incomplete: the first read of a
            // head split in two is not refused. The cut point comes from the
            // input, so the fuzzer explores it.
            let cut = usize::from(data[0]) * head.head_len / 256;
            assert_eq!(
                parse_request(&data[..cut]),
                Ok(None),
                "prefix of {cut} bytes"
            );
            assert_eq!(parse_request(&data[..head.head_len - 1]), Ok(None));
            for name in ["lastEventId", "since", "n"] {
                let _ = query_param(head.query, name);
            }
        }
        Ok(None) => assert!(data.len() < MAX_HEAD_BYTES),
        Err(e) => {
            assert!(matches!(e.status(), 400 | 414 | 431 | 505));
            match e {
                RequestError::RequestLineTooLong { limit } => {
                    assert_eq!(limit, MAX_REQUEST_LINE);
                    assert!(data.len() > MAX_REQUEST_LINE);
                }
                RequestError::HeadTooLarge { limit } => {
                    assert_eq!(limit, MAX_HEAD_BYTES);
                    assert!(data.len() >= MAX_HEAD_BYTES);
                }
                _ => {}
            }
            let _ = e.to_string();
        }
    }
});
