//! The audit log file (`--audit-log-path`; `-` is standard output): one JSON event per line,
//! written by its own thread so no request waits for the disk, flushed whenever the queue
//! runs dry. Rotated as kube-apiserver's (lumberjack) rotates it: past `--audit-log-maxsize`
//! megabytes the file is renamed `<name>-<UTC time>.<ext>` and a new one started; more than
//! `--audit-log-maxbackup` old files, or files older than `--audit-log-maxage` days, are
//! removed (0: no limit).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::{Duration, SystemTime};

use super::webhook::WebhookQueue;

/// Where and how the log is kept.
#[derive(Clone, Debug, Default)]
pub struct LogConfig {
    pub path: String,
    /// Megabytes before rotation; 0: never rotated.
    pub max_size_mb: u64,
    /// Old files kept; 0: all.
    pub max_backups: usize,
    /// Days old files are kept; 0: no limit.
    pub max_age_days: u64,
}

/// The sending end: events queued for the log's writer thread and the webhook.
#[derive(Clone)]
pub struct Sink {
    lines: Option<Sender<String>>,
    webhook: Option<WebhookQueue>,
    /// `apiserver_audit_event_total`.
    written: prometheus_client::metrics::counter::Counter,
}

impl Sink {
    /// Opens (creates) the log, if any, and starts its writer thread; events also go to
    /// `webhook`, if any.
    pub fn start(
        log: Option<LogConfig>,
        webhook: Option<WebhookQueue>,
        written: prometheus_client::metrics::counter::Counter,
    ) -> std::io::Result<Sink> {
        let lines = match log {
            Some(config) => {
                let (lines, queue) = channel();
                let mut out = Output::open(config)?;
                std::thread::Builder::new()
                    .name("audit-log".to_owned())
                    .spawn(move || out.run(&queue))?;
                Some(lines)
            }
            None => None,
        };
        Ok(Sink {
            lines,
            webhook,
            written,
        })
    }

    pub fn write(&self, line: String) {
        self.written.inc();
        if let Some(webhook) = &self.webhook {
            webhook.push(line.clone());
        }
        if let Some(lines) = &self.lines {
            // The writer thread only ends with the process.
            let _ = lines.send(line);
        }
    }
}

enum Target {
    Stdout,
    File {
        path: PathBuf,
        writer: BufWriter<File>,
        size: u64,
    },
}

struct Output {
    config: LogConfig,
    target: Target,
}

fn open_append(path: &Path) -> std::io::Result<(BufWriter<File>, u64)> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let size = file.metadata()?.len();
    Ok((BufWriter::new(file), size))
}

impl Output {
    fn open(config: LogConfig) -> std::io::Result<Output> {
        let target = match config.path.as_str() {
            "-" => Target::Stdout,
            path => {
                let path = PathBuf::from(path);
                let (writer, size) = open_append(&path)?;
                Target::File { path, writer, size }
            }
        };
        Ok(Output { config, target })
    }

    fn run(&mut self, queue: &Receiver<String>) {
        while let Ok(first) = queue.recv() {
            self.line(&first);
            while let Ok(next) = queue.try_recv() {
                self.line(&next);
            }
            let flushed = match &mut self.target {
                Target::Stdout => std::io::stdout().flush(),
                Target::File { writer, .. } => writer.flush(),
            };
            if let Err(error) = flushed {
                tracing::warn!(%error, "writing the audit log");
            }
        }
    }

    fn line(&mut self, line: &str) {
        let bytes = line.len() as u64 + 1;
        if let Target::File { size, .. } = &self.target {
            let limit = self.config.max_size_mb.saturating_mul(1 << 20);
            if limit > 0 && *size > 0 && *size + bytes > limit {
                if let Err(error) = self.rotate() {
                    tracing::warn!(%error, "rotating the audit log");
                }
            }
        }
        let written = match &mut self.target {
            Target::Stdout => writeln!(std::io::stdout(), "{line}"),
            Target::File { writer, size, .. } => {
                *size += bytes;
                writeln!(writer, "{line}")
            }
        };
        if let Err(error) = written {
            tracing::warn!(%error, "writing the audit log");
        }
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let Target::File { path, writer, size } = &mut self.target else {
            return Ok(());
        };
        writer.flush()?;
        let backup = backup_name(path, time::OffsetDateTime::now_utc());
        std::fs::rename(&*path, &backup)?;
        let (fresh, fresh_size) = open_append(path)?;
        *writer = fresh;
        *size = fresh_size;
        let path = path.clone();
        prune(&path, self.config.max_backups, self.config.max_age_days)
    }
}

/// `audit.log` → `audit-2026-12-05T04-40-00.000.log`, lumberjack's backup name.
fn backup_name(path: &Path, now: time::OffsetDateTime) -> PathBuf {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("audit");
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| format!(".{e}"))
        .unwrap_or_default();
    let stamp = format!(
        "{:04}-{:02}-{:02}T{:02}-{:02}-{:02}.{:03}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.millisecond()
    );
    path.with_file_name(format!("{stem}-{stamp}{ext}"))
}

/// Removes the oldest backups past `max_backups` and those older than `max_age_days`.
fn prune(path: &Path, max_backups: usize, max_age_days: u64) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("audit");
    let prefix = format!("{stem}-");
    let mut backups: Vec<(SystemTime, PathBuf)> = std::fs::read_dir(dir)?
        .flatten()
        .filter(|entry| {
            entry
                .file_name()
                .to_str()
                .is_some_and(|name| name.starts_with(&prefix))
        })
        .filter_map(|entry| Some((entry.metadata().ok()?.modified().ok()?, entry.path())))
        .collect();
    backups.sort_by_key(|b| std::cmp::Reverse(b.0)); // newest first
    let max_age = Duration::from_secs(max_age_days * 24 * 3600);
    let now = SystemTime::now();
    for (index, (modified, backup)) in backups.iter().enumerate() {
        let too_many = max_backups > 0 && index >= max_backups;
        let too_old =
            max_age_days > 0 && now.duration_since(*modified).unwrap_or_default() > max_age;
        if too_many || too_old {
            std::fs::remove_file(backup)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backups_are_named_as_lumberjack_names_them() {
        let at = time::macros::datetime!(2026-12-05 04:40:01.250 UTC);
        assert_eq!(
            backup_name(Path::new("/var/log/audit.log"), at),
            PathBuf::from("/var/log/audit-2026-12-05T04-40-01.250.log")
        );
    }

    #[test]
    fn a_full_log_rotates_and_old_backups_go() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("audit.log");
        let config = LogConfig {
            path: path.to_string_lossy().into_owned(),
            max_size_mb: 1,
            max_backups: 2,
            max_age_days: 0,
        };
        let mut out = Output::open(config).expect("open");
        let line = "x".repeat(400 * 1024);
        for _ in 0..10 {
            out.line(&line);
            // Distinct backup names: they carry the time to the millisecond.
            std::thread::sleep(Duration::from_millis(5));
        }
        if let Target::File { writer, .. } = &mut out.target {
            writer.flush().expect("flush");
        }
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("list")
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}"); // the log and two backups
        let size = std::fs::metadata(&path).expect("log").len();
        assert!(size > 0 && size <= 1 << 20, "{size}");
    }
}
