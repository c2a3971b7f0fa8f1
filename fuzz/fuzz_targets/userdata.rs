//! Cloud user-data decoding (`source::metadata::userdata`): base64 and gzip unwrapping (with
//! its size bound: no decompression bomb), then the kubejoin keys or typed documents.
#![no_main]

use kubejoin::source::metadata::userdata::{decode, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(decoded) = decode(data) {
        // The bound holds whatever the wrapping claimed.
        assert!(
            decoded.len() <= kubejoin::source::metadata::MAX_USER_DATA,
            "{}",
            decoded.len()
        );
        let _ = parse(&decoded);
    }
    let _ = parse(data);
});
