//! `WRITER_CPU`: the one CPU the group-commit writer runs on.
//!
//! Why: a batch is a chain of hand-offs between two threads that take
//! turns, the writer and whatever executes its statements (SQLite: the
//! write connection's thread in this process; PostgreSQL: the connection's
//! backend process). When the kernel puts the two on different cores, each
//! hand-off waits for the other core to wake up, or for the HTTP threads
//! and the load on it to make room. On one core they simply take turns.
//! Side by side on a 2-core machine: SQLite ingest +28–36% under full load
//! (docs/benchmarks.md, "What limits it").
//!
//! `auto` pins only what lives in this process, so only SQLite: the writer
//! thread, and the SQLite write connection's thread, which is opened again
//! from the pinned writer thread so it inherits the CPU
//! (`Store::reopen_writer_here`). A connection opened again after a fault
//! (`sqlite::writer`) keeps the CPU when the writer thread opened it, as it
//! does for every batch; one a purge opened from the HTTP runtime does not
//! (slower until the next fault, never wrong). PostgreSQL's backends are not ours to
//! move; with a CPU number the writer thread is pinned on PostgreSQL too,
//! which helps only when the operator pins PostgreSQL to that CPU as well
//! (docs/operations.md).

use std::fmt;
use std::str::FromStr;

use crate::store::Backend;

/// The `WRITER_CPU` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriterCpu {
    /// SQLite: the last CPU this process may use, when it may use two or
    /// more. PostgreSQL: not pinned.
    Auto,
    Off,
    Cpu(usize),
}

impl FromStr for WriterCpu {
    type Err = String;

    fn from_str(s: &str) -> Result<WriterCpu, String> {
        match s.trim() {
            "auto" => Ok(WriterCpu::Auto),
            "off" => Ok(WriterCpu::Off),
            n => n
                .parse()
                .map(WriterCpu::Cpu)
                .map_err(|_| format!("expected auto, off or a CPU number (0, 1, …), got {s:?}")),
        }
    }
}

impl fmt::Display for WriterCpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriterCpu::Auto => f.write_str("auto"),
            WriterCpu::Off => f.write_str("off"),
            WriterCpu::Cpu(n) => write!(f, "{n}"),
        }
    }
}

impl WriterCpu {
    /// The CPU to pin the writer to, given the backend and the CPUs this
    /// process may run on (sorted); an error names the setting.
    pub fn resolve(self, backend: Backend, allowed: &[usize]) -> Result<Option<usize>, String> {
        match self {
            WriterCpu::Off => Ok(None),
            WriterCpu::Auto => Ok(match backend {
                // One core is the whole machine: nothing to choose.
                Backend::Sqlite if allowed.len() >= 2 => allowed.last().copied(),
                _ => None,
            }),
            WriterCpu::Cpu(n) if allowed.contains(&n) => Ok(Some(n)),
            WriterCpu::Cpu(n) => Err(format!(
                "WRITER_CPU={n}: this process may run on CPUs {}; choose one of them, auto or off",
                listed(allowed)
            )),
        }
    }
}

/// The CPUs this process may run on, sorted (empty where the platform does
/// not say).
pub fn allowed_cpus() -> Vec<usize> {
    let mut cpus: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|core| core.id)
        .collect();
    cpus.sort_unstable();
    cpus
}

/// Pins the calling thread (and the threads it starts from now on) to
/// `cpu`; whether the platform allowed it.
pub fn pin_current_thread(cpu: usize) -> bool {
    core_affinity::set_for_current(core_affinity::CoreId { id: cpu })
}

/// `0-3` style, or the list where it has gaps.
fn listed(cpus: &[usize]) -> String {
    match (cpus.first(), cpus.last()) {
        (Some(first), Some(last)) if last - first + 1 == cpus.len() && first != last => {
            format!("{first}-{last}")
        }
        _ => cpus
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(","),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_setting_reads_auto_off_or_a_number() {
        assert_eq!("auto".parse(), Ok(WriterCpu::Auto));
        assert_eq!(" off ".parse(), Ok(WriterCpu::Off));
        assert_eq!("3".parse(), Ok(WriterCpu::Cpu(3)));
        let err = "first".parse::<WriterCpu>().unwrap_err();
        assert!(err.contains("auto, off or a CPU number"), "{err}");
        assert!("-1".parse::<WriterCpu>().is_err());
        for setting in [WriterCpu::Auto, WriterCpu::Off, WriterCpu::Cpu(7)] {
            assert_eq!(setting.to_string().parse(), Ok(setting));
        }
    }

    #[test]
    fn auto_pins_sqlite_to_the_last_cpu_and_leaves_postgres_alone() {
        let two = [0, 1];
        assert_eq!(WriterCpu::Auto.resolve(Backend::Sqlite, &two), Ok(Some(1)));
        assert_eq!(
            WriterCpu::Auto.resolve(Backend::Sqlite, &[2, 5, 9]),
            Ok(Some(9))
        );
        assert_eq!(WriterCpu::Auto.resolve(Backend::Sqlite, &[0]), Ok(None));
        assert_eq!(WriterCpu::Auto.resolve(Backend::Sqlite, &[]), Ok(None));
        assert_eq!(WriterCpu::Auto.resolve(Backend::Postgres, &two), Ok(None));
        assert_eq!(WriterCpu::Off.resolve(Backend::Sqlite, &two), Ok(None));
    }

    #[test]
    fn a_cpu_number_must_be_one_the_process_may_use() {
        assert_eq!(
            WriterCpu::Cpu(0).resolve(Backend::Postgres, &[0, 1]),
            Ok(Some(0))
        );
        let err = WriterCpu::Cpu(4)
            .resolve(Backend::Sqlite, &[0, 1, 2, 3])
            .unwrap_err();
        assert_eq!(
            err,
            "WRITER_CPU=4: this process may run on CPUs 0-3; choose one of them, auto or off"
        );
        let err = WriterCpu::Cpu(1)
            .resolve(Backend::Sqlite, &[0, 2])
            .unwrap_err();
        assert!(err.contains("CPUs 0,2;"), "{err}");
    }
}
