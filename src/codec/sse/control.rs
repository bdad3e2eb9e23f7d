//! The proxy's own events on a stream, beside the records: `event:error`
//! (the stream ends; the client resumes with its last id), `event:reset`
//! (the id it sent could not be used) and `event:gap` (Kafka no longer holds
//! what it asked for). Each carries one line of JSON.

use super::frame::encode_event;
use crate::model::{Offset, Partition};

/// Appends `event:error` with `{"reason":"..."}`.
pub fn error_event(out: &mut Vec<u8>, reason: &str) {
    encode_event(out, None, "error", json_reason(reason).as_bytes());
}

/// Appends `event:reset` with `{"reason":"..."}`.
pub fn reset_event(out: &mut Vec<u8>, reason: &str) {
    encode_event(out, None, "reset", json_reason(reason).as_bytes());
}

/// `event:gap` with `{"partition":..,"requested":..,"resumed_at":..}`.
pub fn gap_event(partition: Partition, requested: Offset, resumed_at: Offset) -> Vec<u8> {
    let data = format!(
        "{{\"partition\":{partition},\"requested\":{requested},\"resumed_at\":{resumed_at}}}"
    );
    let mut frame = Vec::with_capacity(data.len() + 24);
    encode_event(&mut frame, None, "gap", data.as_bytes());
    frame
}

/// `event:gap` for offsets `from..to` that Kafka holds but the proxy could
/// not decode: `{"partition":..,"requested":from,"resumed_at":to,"reason":..}`.
pub fn skipped_event(out: &mut Vec<u8>, partition: Partition, from: Offset, to: Offset) {
    let data = format!(
        "{{\"partition\":{partition},\"requested\":{from},\"resumed_at\":{to},\"reason\":\"undecodable record batch\"}}"
    );
    encode_event(out, None, "gap", data.as_bytes());
}

/// Appends `event:challenge` with `{"expires_at":<unix s>,"expires_in":<s>}`
/// and no `id:` (the client's last event id stays): its token expires
/// soon, it should open a new stream with a fresh one and that id.
pub fn challenge_event(out: &mut Vec<u8>, expires_at: u64, expires_in: u64) {
    let data = format!("{{\"expires_at\":{expires_at},\"expires_in\":{expires_in}}}");
    encode_event(out, None, "challenge", data.as_bytes());
}

/// `{"reason":"..."}` with the reason escaped as a JSON string.
fn json_reason(reason: &str) -> String {
    let mut s = String::with_capacity(reason.len() + 16);
    s.push_str("{\"reason\":\"");
    for c in reason.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c if (c as u32) < 0x20 => s.push_str(&format!("\\u{:04x}", c as u32)),
            c => s.push(c),
        }
    }
    s.push_str("\"}");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_reason_escapes() {
        assert_eq!(
            json_reason("a\"b\\c\n"),
            "{\"reason\":\"a\\\"b\\\\c\\u000a\"}"
        );
    }

    #[test]
    fn control_events_are_one_line_of_json() {
        let mut out = Vec::new();
        error_event(&mut out, "gone \"now\"");
        reset_event(&mut out, "bad id");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "event:error\ndata:{\"reason\":\"gone \\\"now\\\"\"}\n\n\
             event:reset\ndata:{\"reason\":\"bad id\"}\n\n"
        );
        let mut challenge = Vec::new();
        challenge_event(&mut challenge, 1_800_000_000, 30);
        assert_eq!(
            challenge,
            b"event:challenge\ndata:{\"expires_at\":1800000000,\"expires_in\":30}\n\n"
        );
        assert_eq!(
            gap_event(Partition(2), Offset(5), Offset(9)),
            b"event:gap\ndata:{\"partition\":2,\"requested\":5,\"resumed_at\":9}\n\n"
        );
    }
}
