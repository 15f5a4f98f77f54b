//! Content hashes as the xtask prints and tags them: lowercase hex of SHA-256.

use std::fmt::Write as _;

use sha2::{Digest as _, Sha256};

/// Two lowercase hex digits per byte.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
            let _ = write!(out, "{byte:02x}");
            out
        })
}

/// The first `digits` hex digits of a SHA-256 over `parts`, each prefixed with its length so
/// that moving bytes from one part to the next changes the hash.
pub(crate) fn short_hash(parts: &[&[u8]], digits: usize) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    let mut text = hex(&hasher.finalize());
    text.truncate(digits);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_two_lower_case_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xab, 0xff]), "000fabff");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn short_hashes_depend_on_where_parts_split() {
        assert_ne!(
            short_hash(&[b"ab", b"c"], 12),
            short_hash(&[b"a", b"bc"], 12)
        );
        assert_eq!(
            short_hash(&[b"ab", b"c"], 12),
            short_hash(&[b"ab", b"c"], 12)
        );
        assert_eq!(short_hash(&[], 12).len(), 12);
        assert_eq!(short_hash(&[b"x"], 16).len(), 16);
    }
}
