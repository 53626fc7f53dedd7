//! Passwords: argon2id (OWASP parameters, the crate's defaults) over Rocket.Chat's pre-hash, the
//! lowercase hex SHA-256 of the password, so plain and `{"digest": …}` logins verify alike.

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use sha2::{Digest, Sha256};

/// Lowercase hex SHA-256 of a plain password (what Rocket.Chat clients send as `digest`).
pub fn prehash(plain: &str) -> String {
    hex(&Sha256::digest(plain.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The PHC string to store for a plain password.
pub fn hash_password(plain: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(prehash(plain).as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| format!("password hashing: {e}"))
}

/// Whether `digest` (the hex pre-hash) matches the stored PHC string. A missing or unparsable
/// stored hash still costs one argon2 verification, so the answer takes the same time.
pub fn verify_digest(digest: &str, stored: Option<&str>) -> bool {
    let digest = digest.to_ascii_lowercase();
    let parsed = stored.and_then(|s| PasswordHash::new(s).ok());
    match parsed {
        Some(hash) => Argon2::default()
            .verify_password(digest.as_bytes(), &hash)
            .is_ok(),
        None => {
            // Equal work for unknown users: verify against a fixed dummy hash and fail.
            let _ = Argon2::default().verify_password(digest.as_bytes(), &dummy());
            false
        }
    }
}

fn dummy() -> PasswordHash {
    static DUMMY: LazyLock<String> = LazyLock::new(|| {
        hash_password("inquiryd-dummy-password").unwrap_or_else(|_| String::new())
    });
    PasswordHash::new(&DUMMY).unwrap_or_else(|_| {
        PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$ZmFrZWhhc2hmYWtlaGFzaGZha2VoYXNoZmFrZWhhc2g")
            .expect("static PHC string parses")
    })
}

/// Warms the dummy hash so the first unknown-user login is not slower than the rest.
pub fn warm_up() {
    let _ = dummy();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_digest_verify() {
        let stored = hash_password("s3cret").unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(verify_digest(&prehash("s3cret"), Some(&stored)));
        assert!(verify_digest(
            &prehash("s3cret").to_uppercase(),
            Some(&stored)
        ));
        assert!(!verify_digest(&prehash("wrong"), Some(&stored)));
        assert!(!verify_digest(&prehash("s3cret"), None));
    }
}
