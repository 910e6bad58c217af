//! Generated callbacks written to a file, signed, instead of sent: the load
//! generator's traffic for another HTTP client to replay
//! (`bench/wrk-replay.lua`), so a benchmark can drive this service and a
//! reference receiver with the same client and compare like with like.

use std::io::{self, Write};

use super::Sender;
use super::traffic::{self, Plan};

/// One line of a request file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    pub path: &'a str,
    pub content_type: &'a str,
    pub body: &'a str,
}

/// Reads a line `write` wrote.
pub fn parse_line(line: &str) -> Result<Request<'_>, String> {
    let mut fields = line.splitn(3, '\t');
    match (fields.next(), fields.next(), fields.next()) {
        (Some(path), Some(content_type), Some(body)) if path.starts_with('/') => Ok(Request {
            path,
            content_type,
            body,
        }),
        _ => Err("not PATH<TAB>CONTENT-TYPE<TAB>BODY with PATH starting with /".into()),
    }
}

/// Writes the callbacks of `sessions` generated sessions, one request per
/// line: `PATH <TAB> CONTENT-TYPE <TAB> BODY` (no body of any encoding holds
/// a tab or a line break). Each is signed now with a fresh nonce, so the
/// file must be replayed within the server's TIMESTAMP_TOLERANCE_SECS.
///
/// The order is the one `window` sessions in flight would send: the first
/// callback of each of `window` sessions, then the second of each, and so
/// on, then the next `window` sessions. A client replaying the file with
/// about `window` connections then has each session's callbacks in order
/// and seldom two of one session in flight at once. Returns the number of
/// requests written.
pub fn write(
    out: &mut impl Write,
    sender: &Sender,
    plan: &Plan,
    sessions: u64,
    window: usize,
) -> io::Result<u64> {
    let window = window.max(1) as u64;
    let mut rng = rand::rng();
    let mut written = 0;
    let mut first = 0;
    while first < sessions {
        let batch: Vec<_> = (first..sessions.min(first + window))
            .map(|n| traffic::session(plan, n, &mut rng))
            .collect();
        let longest = batch.iter().map(Vec::len).max().unwrap_or(0);
        for j in 0..longest {
            for callback in batch.iter().filter_map(|session| session.get(j)) {
                let (url, body, content_type) = sender.prepare(callback);
                if body.contains(['\t', '\n', '\r']) {
                    return Err(io::Error::other(format!(
                        "a {} body holds a tab or a line break; the file cannot carry it",
                        callback.event
                    )));
                }
                writeln!(out, "{}\t{content_type}\t{body}", url.path())?;
                written += 1;
            }
        }
        first += window;
    }
    out.flush()?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sender::Encoding;
    use crate::zego::{body, signature};

    fn plan() -> Plan {
        Plan {
            appid: 7,
            users: 2,
            shuffle: false,
            duplicates: 0.0,
            run_id: "t".into(),
        }
    }

    #[test]
    fn a_line_without_its_three_fields_is_refused() {
        for bad in [
            "",
            "/callbacks/room_close",
            "/p\tapplication/json",
            "p\tc\t{}",
        ] {
            assert!(parse_line(bad).is_err(), "{bad:?}");
        }
        let ok = parse_line("/p\tc\t{\"a\":\"\\t\"}").unwrap();
        assert_eq!(
            (ok.path, ok.content_type, ok.body),
            ("/p", "c", "{\"a\":\"\\t\"}")
        );
    }

    #[test]
    fn every_line_is_a_signed_request_and_sessions_stay_in_order() {
        let mut sender = Sender::new("http://127.0.0.1:1/zego", "s3cret").unwrap();
        for encoding in [Encoding::Json, Encoding::Form] {
            sender.encoding = encoding;
            let mut out = Vec::new();
            let written = write(&mut out, &sender, &plan(), 5, 2).unwrap();
            let text = String::from_utf8(out).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!((written, lines.len()), (5 * 6, 5 * 6), "{encoding:?}");

            let mut events_of_room: Vec<(String, Vec<String>)> = Vec::new();
            let mut nonces = std::collections::HashSet::new();
            for line in &lines {
                let Request {
                    path,
                    content_type,
                    body: text,
                } = parse_line(line).unwrap();
                let (_, fields) = body::decode(text.as_bytes()).unwrap();
                let field = |k: &str| fields[k].as_str().unwrap().to_owned();
                assert_eq!(path, format!("/zego/callbacks/{}", field("event")));
                assert_eq!(content_type, sender.prepare(&traffic::fixtures()[0]).2);
                assert!(signature::verify(
                    "s3cret",
                    &field("timestamp"),
                    &field("nonce"),
                    &field("signature")
                ));
                assert!(nonces.insert(field("nonce")), "a nonce twice");
                match events_of_room
                    .iter_mut()
                    .find(|(r, _)| *r == field("room_id"))
                {
                    Some((_, events)) => events.push(field("event")),
                    None => events_of_room.push((field("room_id"), vec![field("event")])),
                }
            }
            // Sessions two at a time: the two first callbacks, then the two second ones.
            let event_of = |line: &str| {
                parse_line(line)
                    .unwrap()
                    .path
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_owned()
            };
            let head: Vec<String> = lines[..4].iter().map(|l| event_of(l)).collect();
            assert_eq!(
                head,
                ["room_create", "room_create", "room_login", "room_login"]
            );
            let rooms: Vec<&str> = events_of_room.iter().map(|(r, _)| r.as_str()).collect();
            assert_eq!(
                rooms,
                ["t-room-0", "t-room-1", "t-room-2", "t-room-3", "t-room-4"]
            );
            for (room, events) in &events_of_room {
                assert_eq!(
                    events,
                    &[
                        "room_create",
                        "room_login",
                        "room_logout",
                        "room_login",
                        "room_logout",
                        "room_close"
                    ]
                    .map(String::from)
                    .to_vec(),
                    "{room}"
                );
            }
        }
    }
}
