//! The room-history model: typed events, deliveries and their outcomes, and
//! the pairing rules that turn logins and logouts into presence intervals
//! (session rows merge in `store::merge`).
//! Pure: no I/O, no wire formats.

pub mod delivery;
pub mod event;
pub mod occupancy;
pub mod presence;
pub mod reason;
pub mod time;

pub use delivery::{Delivery, Outcome, RejectCode, Rejection, ReplayKey, Verdict};
pub use event::{ADMIN_ROLE, Event, EventDetail, EventKind, EventTime, RoomSessionId, UserRef};
