//! ZEGO's wire formats: body encodings, lenient field types, the signature
//! and the mapping from fields to typed events. Knows nothing of HTTP or storage.

pub mod body;
pub mod event;
pub mod fields;
mod hostile;
pub mod secrets;
pub mod signature;

pub use secrets::{Secret, SecretBook};
