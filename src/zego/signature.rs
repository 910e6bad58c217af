//! ZEGO's callback signature: `hex(sha1(join(sort([secret, timestamp, nonce]))))`.
//! Pure functions, no web types, so every caller (HTTP, `send`, tests) shares them.

use sha1::{Digest, Sha1};

/// The signature ZEGO computes for `timestamp` and `nonce` under `secret`.
/// The three are sorted as byte strings, not numbers (`"99" > "1470820198"`).
pub fn sign(secret: &str, timestamp: &str, nonce: &str) -> String {
    let mut parts = [secret, timestamp, nonce];
    parts.sort_unstable();
    let mut hasher = Sha1::new();
    for part in parts {
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Whether `signature` is what `secret` gives, compared in constant time so
/// the comparison leaks nothing about how many leading characters matched.
/// Hex case is ignored: the value is case-insensitive by nature.
pub fn verify(secret: &str, timestamp: &str, nonce: &str, signature: &str) -> bool {
    let expected = sign(secret, timestamp, nonce);
    constant_time_eq::constant_time_eq(
        expected.as_bytes(),
        signature.to_ascii_lowercase().as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ZEGO's published vector (see fixtures/signature-vector.txt).
    #[test]
    fn zego_documented_test_vector() {
        assert_eq!(
            sign("secret", "1470820198", "123412"),
            "5bd59fd62953a8059fb7eaba95720f66d19e4517"
        );
        assert!(verify(
            "secret",
            "1470820198",
            "123412",
            "5bd59fd62953a8059fb7eaba95720f66d19e4517"
        ));
    }

    #[test]
    fn sorting_is_by_string_not_number() {
        assert_eq!(
            sign("secret", "1499676978", "350176"),
            "264b7f500b4935a082fef1da1760769245880d7c"
        );
        assert_eq!(
            sign("secret", "1470820198", "99"),
            "4702a9c87c9a92ad11088b6c10ce1e734fa9a6b5"
        );
        // Numeric sort or no sort give these; they must not verify.
        assert!(!verify(
            "secret",
            "1470820198",
            "99",
            "7c5288c02d2e5b9ce5dac4c9d6c764c684d8d4a8"
        ));
        assert!(!verify(
            "secret",
            "1470820198",
            "123412",
            "c015908d52c8c454bc2d9fb2b1cce1163e29b356"
        ));
    }

    #[test]
    fn wrong_secret_or_truncated_signature_fails() {
        let good = sign("secret", "1470820198", "123412");
        assert!(!verify("other", "1470820198", "123412", &good));
        assert!(!verify("secret", "1470820198", "123412", &good[..39]));
        assert!(!verify("secret", "1470820198", "123412", ""));
        assert!(verify(
            "secret",
            "1470820198",
            "123412",
            &good.to_uppercase()
        ));
    }
}
