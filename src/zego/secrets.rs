//! Which callback secrets may sign a callback for a given appid.

use std::collections::HashMap;
use std::fmt;

/// A callback secret. Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Secrets by appid. An appid with its own entries is checked against those
/// only; every other appid against the shared list. More than one secret per
/// list is how a secret is rotated: any one of them verifies.
#[derive(Debug, Clone, Default)]
pub struct SecretBook {
    shared: Vec<Secret>,
    per_app: HashMap<u32, Vec<Secret>>,
}

impl SecretBook {
    pub fn new(shared: Vec<Secret>, per_app: HashMap<u32, Vec<Secret>>) -> SecretBook {
        SecretBook { shared, per_app }
    }

    pub fn is_empty(&self) -> bool {
        self.shared.is_empty() && self.per_app.is_empty()
    }

    /// The secrets that may sign for `appid`; the shared ones when the appid
    /// is unknown or unreadable.
    pub fn for_app(&self, appid: Option<u32>) -> &[Secret] {
        appid
            .and_then(|id| self.per_app.get(&id))
            .map_or(&self.shared, |v| v)
    }
}
