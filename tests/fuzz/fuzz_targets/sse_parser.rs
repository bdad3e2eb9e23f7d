//! The `text/event-stream` parser on any bytes and any chunking: it never
//! panics, never dispatches more than it was given, and the events, the
//! last event id, the retry, the comment count and the outcome are the same
//! whether the stream comes in one piece, in two, or a byte at a time.
//!
//! Input: one byte choosing the line limit (so `LineTooLong` is reached),
//! one choosing where to cut, then the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sse_kafka::codec::sse::{Event, ParseError, Parser};

/// What a parser made of a stream.
#[derive(Debug, PartialEq)]
struct Outcome {
    events: Vec<Event>,
    last_event_id: Option<String>,
    retry: Option<u64>,
    comments: u64,
    result: Result<(), ParseError>,
}

fn run<'a>(max_line: usize, chunks: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut parser = Parser::new().with_max_line(max_line);
    let mut events = Vec::new();
    let mut result = Ok(());
    for chunk in chunks {
        result = parser.feed(chunk, |e| events.push(e));
        if result.is_err() {
            break;
        }
    }
    if let Err(e) = result {
        // Unusable after an error, and says so again.
        assert_eq!(
            parser.feed(b"data: more\n\n", |_| panic!("event after error")),
            Err(e)
        );
    }
    Outcome {
        events,
        last_event_id: parser.last_event_id().map(str::to_owned),
        retry: parser.retry(),
        comments: parser.comments(),
        result,
    }
}

fuzz_target!(|data: &[u8]| {
    let [limit, cut, stream @ ..] = data else {
        return;
    };
    // 0..=254 bytes, or the default 1 MiB limit.
    let max_line = match *limit {
        255 => sse_kafka::codec::sse::DEFAULT_MAX_LINE,
        n => usize::from(n),
    };
    let whole = run(max_line, [stream]);
    let mut data_bytes = 0;
    for e in &whole.events {
        assert!(!e.id.as_deref().is_some_and(|id| id.contains('\0')));
        data_bytes += e.data.len();
    }
    // Lossy UTF-8 can triple a byte (one invalid byte is U+FFFD, 3 bytes).
    assert!(data_bytes <= 3 * stream.len());
    let at = usize::from(*cut) * stream.len() / 256;
    let (a, b) = stream.split_at(at);
    assert_eq!(run(max_line, [a, b]), whole, "cut at {at}");
    assert_eq!(run(max_line, stream.chunks(1)), whole, "byte at a time");
});
