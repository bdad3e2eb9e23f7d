//! Base64 appended to a caller's buffer in place: the frame encoder writes
//! binary values and tombstone keys with it, the id codec its ids. No
//! temporary allocation on the hot path.

use base64::engine::Config as _;
use base64::engine::GeneralPurpose;
use base64::Engine as _;

/// Appends base64 of `data` without a temporary allocation: the exact encoded
/// length is known up front, so `out` grows once and the engine writes in place.
pub fn append_base64(engine: &GeneralPurpose, data: &[u8], out: &mut Vec<u8>) {
    let padding = engine.config().encode_padding();
    // `None` only when the length overflows usize, impossible for a slice
    // that fits in memory (base64 grows data by 4/3).
    let len = base64::encoded_len(data.len(), padding).expect("base64 length overflows usize");
    let start = out.len();
    out.resize(start + len, 0);
    let written = engine
        .encode_slice(data, &mut out[start..])
        .expect("output sized by encoded_len");
    debug_assert_eq!(written, len);
}
