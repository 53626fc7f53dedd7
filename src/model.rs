//! Identifier newtypes, so a user id is never passed where a token hash is expected.

use std::fmt;

/// A Rocket.Chat user `_id` (17 characters from Meteor's alphabet when we make one).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(pub String);

/// Rocket.Chat's `hashedToken`: standard base64 of the SHA-256 of the token string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HashedToken(pub String);

impl UserId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A fresh random id in Meteor's `Random.id()` alphabet.
    pub fn random() -> UserId {
        const ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz";
        let mut bytes = [0u8; 17];
        rand::fill(&mut bytes[..]);
        // 256 % 55 != 0 leaves a negligible bias; ids need uniqueness, not uniformity.
        UserId(
            bytes
                .iter()
                .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
                .collect(),
        )
    }
}

impl HashedToken {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
