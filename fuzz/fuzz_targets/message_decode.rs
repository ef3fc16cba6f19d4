#![no_main]
//! Arbitrary bytes to `Message::decode`: never panics; whatever decodes re-encodes to
//! canonical bytes that decode to the same message (compared by `Debug`, so NaN fields
//! compare equal) and re-encode to the same bytes.

use libfuzzer_sys::fuzz_target;
use sarlink_schema::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(first) = Message::decode(data) else {
        return;
    };
    let canonical = first.encode_to_vec();
    let second = match Message::decode(&canonical) {
        Ok(msg) => msg,
        Err(err) => panic!("canonical re-encoding of {first:?} does not decode: {err}"),
    };
    assert_eq!(format!("{first:?}"), format!("{second:?}"));
    assert_eq!(second.encode_to_vec(), canonical);
});
