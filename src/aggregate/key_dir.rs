//! The directory name of one key's snapshots. Keys are arbitrary bytes (a `/`, `..`, a NUL,
//! invalid UTF-8), so a key never becomes a path as it is: it is hex-encoded, and hashed when
//! the hex would be too long for a file name. Specified in `docs/format.md` ("Aggregate
//! snapshots").

use std::fmt::Write;

use crate::projection::fingerprint_of;

/// Longest key whose directory name is its hex: `k` and 200 hex digits, within the 255
/// bytes of a file name on common file systems.
const MAX_HEX_KEY: usize = 100;

/// `k` + lowercase hex of the key, or for longer keys `h` + the key's length and its
/// FNV-1a hash in hex. Only ASCII letters, digits and `-`: never a separator, never `.`.
/// Distinct long keys may share a directory; each snapshot stores its key, and a snapshot of
/// another key is never used.
pub(super) fn key_dir_name(key: &[u8]) -> String {
    if key.len() <= MAX_HEX_KEY {
        let mut name = String::with_capacity(1 + 2 * key.len());
        name.push('k');
        for b in key {
            let _ = write!(name, "{b:02x}");
        }
        name
    } else {
        format!("h{:x}-{:016x}", key.len(), fingerprint_of(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_keys_become_plain_names() {
        assert_eq!(key_dir_name(b""), "k");
        assert_eq!(key_dir_name(b"../x"), "k2e2e2f78");
        assert_eq!(key_dir_name(b"a/\0\xff"), "k612f00ff");
        let long = vec![b'/'; 5000];
        let name = key_dir_name(&long);
        assert!(name.starts_with("h1388-") && name.len() == 6 + 16, "{name}");
        for key in [&b".."[..], b"/", b"\\", &[b'.'; 100][..], &long] {
            let name = key_dir_name(key);
            assert!(name.len() <= 255 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        }
    }
}
