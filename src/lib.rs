//! zego-room-tracker: receives ZEGO room-lifecycle callbacks, stores them
//! exactly once, and merges them into room sessions and presence intervals.
//!
//! Layers, outside in: `http` (axum) → `ingest` (decode, verify, classify)
//! → `zego` (wire formats) and `domain` (typed events, presence pairing) →
//! `store` (PostgreSQL or SQLite behind one trait; session rows merge in
//! `store::merge`).

pub mod cli;
pub mod config;
pub mod domain;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod reports;
pub mod retention;
pub mod seed;
pub mod sender;
pub mod store;
pub mod telemetry;
pub mod zego;
