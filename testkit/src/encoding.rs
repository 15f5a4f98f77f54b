//! Compressed response bodies, read back: the services compress for clients that ask, and the
//! tests check what a browser would get after decoding.

use std::io::Read as _;

/// `body` decoded as its `Content-Encoding` header says (`br`, `gzip`, or none at all).
///
/// Panics on any other coding, or on a body that does not decode: either is the failure the
/// calling test is looking for.
pub fn decode_body(content_encoding: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut decoded = Vec::new();
    let read = match content_encoding {
        None => {
            decoded.extend_from_slice(body);
            Ok(body.len())
        }
        Some("br") => brotli_decompressor::Decompressor::new(body, 4096).read_to_end(&mut decoded),
        Some("gzip") => flate2::read::GzDecoder::new(body).read_to_end(&mut decoded),
        Some(other) => panic!("unexpected Content-Encoding `{other}`"),
    };
    if let Err(err) = read {
        panic!("the {content_encoding:?} body does not decode: {err}");
    }
    decoded
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::decode_body;

    #[test]
    fn gzip_and_plain_bodies_come_back_as_written() {
        let text = b"{\"status\":\"ok\"}".repeat(20);
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gzip.write_all(&text).unwrap();
        let gzip = gzip.finish().unwrap();
        assert_ne!(gzip, text);
        assert_eq!(decode_body(Some("gzip"), &gzip), text);
        assert_eq!(decode_body(None, &text), text);
    }

    #[test]
    #[should_panic(expected = "does not decode")]
    fn a_body_that_is_not_what_its_header_says_fails() {
        decode_body(Some("br"), b"plain text, not brotli");
    }

    #[test]
    #[should_panic(expected = "unexpected Content-Encoding `zstd`")]
    fn an_unknown_coding_fails() {
        decode_body(Some("zstd"), b"");
    }
}
