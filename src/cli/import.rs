//! `import PATH`: load archived callbacks (JSON lines, one body per file, or
//! a directory of such files) through the same decoding, identity and merge
//! rules as HTTP, without signatures. Safe to run twice: the second run finds
//! every event a duplicate.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;

use super::{closing, open_store};
use crate::config::{DatabaseArgs, ReadingArgs};
use crate::domain::Outcome;
use crate::ingest::{PathEvent, RawCallback, assess_unsigned};
use crate::store::Store;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A file (JSON lines, or one callback body in any encoding) or a directory of them.
    path: PathBuf,

    #[command(flatten)]
    database: DatabaseArgs,

    #[command(flatten)]
    reading: ReadingArgs,
}

pub async fn run(args: ImportArgs) -> Result<(), String> {
    let files = list_files(&args.path)?;
    closing(open_store(&args.database).await?, async |store| {
        import(&args, &files, store).await
    })
    .await
}

async fn import(args: &ImportArgs, files: &[PathBuf], store: &dyn Store) -> Result<(), String> {
    let mut outcomes: BTreeMap<&'static str, u64> = BTreeMap::new();
    let (started, mut last_report, mut total) = (Instant::now(), Instant::now(), 0u64);
    for file in files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        for (line, body) in bodies(&text) {
            let raw = RawCallback {
                received_at: RawCallback::arrival_now(),
                remote_addr: None,
                endpoint: format!("import:{}:{line}", file.display()),
                content_type: None,
                body: bytes::Bytes::copy_from_slice(body.as_bytes()),
            };
            let outcome = store
                .record_delivery(&assess_unsigned(
                    args.reading.display_field_decoding,
                    PathEvent::Any,
                    raw,
                ))
                .await
                .map_err(|e| format!("{}:{line}: {e}", file.display()))?;
            if let Outcome::Rejected(why) = &outcome {
                // Named here, not only in the archive: a file of 10,000
                // lines with one bad one should say which.
                eprintln!(
                    "{}:{line}: rejected ({}): {}",
                    file.display(),
                    why.code.as_str(),
                    why.message
                );
            }
            *outcomes.entry(outcome.as_str()).or_default() += 1;
            total += 1;
            if last_report.elapsed() >= Duration::from_secs(1) {
                eprintln!(
                    "imported {total} callbacks ({:.0}/s)",
                    total as f64 / started.elapsed().as_secs_f64()
                );
                last_report = Instant::now();
            }
        }
    }
    let counts: Vec<String> = ["stored", "duplicate", "conflict", "ignored", "rejected"]
        .iter()
        .map(|k| format!("{k} {}", outcomes.get(k).copied().unwrap_or(0)))
        .collect();
    println!(
        "imported {total} callbacks from {} files: {}",
        files.len(),
        counts.join(", ")
    );
    Ok(())
}

fn list_files(path: &Path) -> Result<Vec<PathBuf>, String> {
    if !path.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// JSON lines or one body, with line numbers. JSON lines when there are
/// several lines and the first is a whole JSON object: then each line is a
/// callback of its own, and a bad one is rejected alone (it used to take
/// the whole file with it). A pretty-printed body's first line (`{`) is not
/// an object, so such a file is one body. A UTF-8 byte-order mark (editors
/// on Windows write one) is not part of the first line: with it, the file
/// read as one body, rejected.
fn bodies(text: &str) -> Vec<(usize, &str)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty())
        .collect();
    let first_is_an_object = lines.first().is_some_and(|(_, first)| {
        serde_json::from_str::<serde_json::Value>(first).is_ok_and(|v| v.is_object())
    });
    if lines.len() > 1 && first_is_an_object {
        lines
    } else {
        vec![(1, text.trim())]
    }
}

#[cfg(test)]
mod tests {
    use super::bodies;

    #[test]
    fn json_lines_after_a_byte_order_mark_are_lines() {
        let text = "\u{feff}{\"a\":1}\n\n{\"b\":2}\n";
        assert_eq!(bodies(text), vec![(1, "{\"a\":1}"), (3, "{\"b\":2}")]);
        assert_eq!(bodies("\u{feff}a=1&b=2"), vec![(1, "a=1&b=2")]);
    }

    #[test]
    fn a_bad_line_is_one_body_of_its_own_and_a_pretty_printed_body_is_one() {
        let text = "{\"a\":1}\nnot json\n{\"b\":2}";
        assert_eq!(
            bodies(text),
            vec![(1, "{\"a\":1}"), (2, "not json"), (3, "{\"b\":2}")]
        );
        let pretty = "{\n  \"a\": 1,\n  \"b\": {\"c\": 2}\n}\n";
        assert_eq!(bodies(pretty), vec![(1, pretty.trim())]);
    }
}
