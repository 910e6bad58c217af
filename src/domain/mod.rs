//! The room-history model: typed events, deliveries and their outcomes, and
//! the merge rules that turn events into sessions and presence intervals.
//! Pure: no I/O, no wire formats.

pub mod delivery;
pub mod event;
pub mod occupancy;
pub mod presence;
pub mod reason;
pub mod time;

pub use delivery::{Delivery, Outcome, RejectCode, Rejection, ReplayKey, Verdict};
pub use event::{ADMIN_ROLE, Event, EventDetail, EventKind, EventTime, RoomSessionId, UserRef};
