//! The migration checksum: SHA-256 over the UP section as written, tagged with its algorithm.

use std::fmt;

use sha2::{Digest, Sha256};

/// A migration's fingerprint, stored in the history table as `sha256:<64 hex digits>`.
///
/// Computed over the UP section after the file's UTF-8 BOM is stripped and CRLF line endings
/// become LF, so a checkout on Windows does not look like an edit. When the UP section runs
/// outside a transaction, the bytes `\0no-transaction` are appended: switching an applied
/// migration's execution mode counts as a change. Comments outside UP and the DOWN section
/// are not covered.
///
/// ```
/// use migrate_runtime::Checksum;
///
/// let checksum = Checksum::of_up_section("CREATE TABLE t (id int);\n", true);
/// assert_eq!(Checksum::parse(&checksum.to_string()), Some(checksum));
/// assert!(checksum.to_string().starts_with("sha256:"));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Checksum([u8; 32]);

impl Checksum {
    /// The algorithm tag written before the digest.
    pub const ALGORITHM: &'static str = "sha256";

    /// The checksum of an UP section whose text has already been normalised (no BOM, LF line
    /// endings).
    pub fn of_up_section(up: &str, transactional: bool) -> Checksum {
        let mut hasher = Sha256::new();
        hasher.update(up.as_bytes());
        if !transactional {
            hasher.update(b"\0no-transaction");
        }
        Checksum(hasher.finalize().into())
    }

    /// Wraps a digest computed elsewhere (used by the code `embed_migrations!` generates).
    pub const fn from_bytes(digest: [u8; 32]) -> Checksum {
        Checksum(digest)
    }

    /// The raw SHA-256 digest.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The `sha256:<hex>` text, built on the stack (no allocation; called once per migration
    /// at every start-up).
    pub(crate) fn text(&self) -> [u8; 71] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = [0u8; 71];
        text[..7].copy_from_slice(b"sha256:");
        for (i, byte) in self.0.iter().enumerate() {
            text[7 + 2 * i] = HEX[usize::from(byte >> 4)];
            text[8 + 2 * i] = HEX[usize::from(byte & 0x0f)];
        }
        text
    }

    /// Whether `text` is this checksum's `sha256:<hex>` form.
    ///
    /// ```
    /// use migrate_runtime::Checksum;
    ///
    /// let checksum = Checksum::of_up_section("SELECT 1;\n", true);
    /// assert!(checksum.matches(&checksum.to_string()));
    /// assert!(!checksum.matches("sha256:00"));
    /// ```
    pub fn matches(&self, text: &str) -> bool {
        text.as_bytes() == self.text()
    }

    /// Reads the `sha256:<hex>` form written by `Display`; `None` for anything else,
    /// including another algorithm's tag.
    pub fn parse(text: &str) -> Option<Checksum> {
        let hex = text.strip_prefix(Self::ALGORITHM)?.strip_prefix(':')?;
        if hex.len() != 64 {
            return None;
        }
        let mut digest = [0u8; 32];
        for (byte, pair) in digest.iter_mut().zip(hex.as_bytes().chunks(2)) {
            let pair = std::str::from_utf8(pair).ok()?;
            *byte = u8::from_str_radix(pair, 16).ok()?;
        }
        Some(Checksum(digest))
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.text();
        f.write_str(std::str::from_utf8(&text).expect("ASCII by construction"))
    }
}

impl fmt::Debug for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Checksum({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_test_vector() {
        // printf 'CREATE TABLE users (id bigint PRIMARY KEY);\n' | sha256sum
        let checksum =
            Checksum::of_up_section("CREATE TABLE users (id bigint PRIMARY KEY);\n", true);
        assert_eq!(
            checksum.to_string(),
            "sha256:3456c330330e5584db1ea42d855fe843569a61c7c200bd34b52f8f9c03b28f0d"
        );
    }

    #[test]
    fn execution_mode_is_part_of_the_checksum() {
        let sql = "CREATE INDEX CONCURRENTLY i ON t (x);\n";
        assert_ne!(
            Checksum::of_up_section(sql, true),
            Checksum::of_up_section(sql, false)
        );
    }

    #[test]
    fn parse_rejects_other_forms() {
        let good = Checksum::of_up_section("x", true).to_string();
        assert!(Checksum::parse(&good).is_some());
        assert!(Checksum::parse(&good.replace("sha256", "sha512")).is_none());
        assert!(Checksum::parse(&good[..good.len() - 1]).is_none());
        assert!(Checksum::parse(&good.replace(':', "")).is_none());
        let not_hex = format!("sha256:{}", "g".repeat(64));
        assert!(Checksum::parse(&not_hex).is_none());
    }
}
