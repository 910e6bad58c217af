//! Names of ZEGO's close and logout reason codes. Unknown codes are kept and
//! named `unknown`: ZEGO adds codes over time and we never reject one.

/// `room_close.close_reason`.
pub fn close_reason_name(code: i64) -> &'static str {
    match code {
        0 => "normal",
        1 => "heartbeat_timeout",
        2 => "last_user_disconnected",
        3 => "last_user_kicked_out",
        _ => "unknown",
    }
}

/// `room_logout.reason`.
pub fn logout_reason_name(code: i64) -> &'static str {
    match code {
        0 => "normal",
        1 => "heartbeat_timeout",
        2 => "disconnected",
        3 => "kicked_out",
        4 => "token_expired",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes_have_names_and_others_are_unknown() {
        assert_eq!(close_reason_name(1), "heartbeat_timeout");
        assert_eq!(close_reason_name(3), "last_user_kicked_out");
        assert_eq!(close_reason_name(4), "unknown");
        assert_eq!(logout_reason_name(4), "token_expired");
        assert_eq!(logout_reason_name(-1), "unknown");
    }
}
