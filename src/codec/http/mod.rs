//! HTTP/1.1 for the SSE server, as pure functions of bytes: `request`
//! parses request heads (a push parser on `httparse` that borrows from the
//! caller's buffer, answers `Ok(None)` while the head is incomplete and
//! enforces every size limit with a typed error); `response` appends
//! complete response heads (and, for errors, a short plain-text body) to a
//! caller-owned `Vec<u8>`. The server answers exactly one request per
//! connection and then closes it, so every response says `connection:
//! close`, request bodies are never read and no keep-alive state exists here.

mod request;
mod response;

pub use request::{
    parse_request, query_param, Method, RequestError, RequestHead, MAX_HEADERS, MAX_HEAD_BYTES,
    MAX_REQUEST_LINE,
};
pub use response::{
    cors_allow_origin, reason, without_body, write_document, write_error, write_error_allowing,
    write_error_challenging, write_preflight, write_stream_head, StreamHead,
};
