//! Login tokens: made from 32 random bytes (base64url), stored and looked up only as their hash.

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::model::HashedToken;

/// A new login token: 32 random bytes, base64url without padding (43 characters).
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes[..]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Rocket.Chat's `hashedToken`: standard base64 of SHA-256 of the token string.
pub fn hash(token: &str) -> HashedToken {
    HashedToken(base64::engine::general_purpose::STANDARD.encode(Sha256::digest(token.as_bytes())))
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_43_url_safe_chars_and_distinct() {
        let (a, b) = (super::generate(), super::generate());
        assert_eq!(a.len(), 43);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_ne!(a, b);
    }

    #[test]
    fn hash_matches_rocketchat() {
        // Accounts._hashLoginToken("abc") in Rocket.Chat = base64(sha256("abc")).
        assert_eq!(
            super::hash("abc").0,
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
    }
}
