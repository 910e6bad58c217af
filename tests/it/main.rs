//! One integration-test binary. Conformance tests run each behaviour against
//! SQLite and PostgreSQL (see `support::conformance!`).

// A failed unwrap is a failed test, with its location: what tests want.
#![allow(clippy::unwrap_used)]

mod api;
mod batching;
mod binary;
mod ingestion;
mod operator;
mod ordering;
mod outage;
mod support;
