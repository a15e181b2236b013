//! The dead-letter file: every sample the forwarder gives up on for a reason other than the
//! operator's own choice (a receiver's lasting 400/409, a single sample still too large, a
//! poison sample) is appended to `<dir>/<endpoint-name>.deadletter` as a `# reason: …`
//! comment and a line-protocol line (`metric,label=value… value=<v> <timestamp_ns>`, the
//! labels as sent, external labels included), so an operator can inspect it, fix the cause
//! and re-ingest it. The file is bounded by [`DEAD_LETTER_BYTES_MAX`]: past it samples are
//! only counted (and logged, once per process), so a receiver that rejects everything
//! cannot fill the disk. Writes are rare and small; they run on the blocking pool, never on
//! an async worker.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::proto::OutSample;

/// Most bytes one endpoint's dead-letter file may grow to (64 MiB: about 400k samples of
/// typical labels, far more than a poison sample a day, far less than any data disk).
pub const DEAD_LETTER_BYTES_MAX: u64 = 64 << 20;

/// One endpoint's dead-letter file, opened on first use. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    inner: Arc<Mutex<Inner>>,
    path: Arc<Path>,
}

#[derive(Debug)]
struct Inner {
    file: Option<File>,
    /// The file's size, known once it is open.
    bytes: u64,
    bytes_max: u64,
    full_logged: bool,
}

impl DeadLetter {
    pub fn new(dir: &Path, endpoint_name: &str) -> Self {
        Self::with_limit(dir, endpoint_name, DEAD_LETTER_BYTES_MAX)
    }

    /// With another size limit (tests reach it quickly).
    pub fn with_limit(dir: &Path, endpoint_name: &str, bytes_max: u64) -> Self {
        // The name comes from the configuration; keep it one path component.
        let file_name: String = endpoint_name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Self {
            inner: Arc::new(Mutex::new(Inner {
                file: None,
                bytes: 0,
                bytes_max,
                full_logged: false,
            })),
            path: dir.join(format!("{file_name}.deadletter")).into(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `samples` with one reason; returns how many were written (the rest did not
    /// fit under the limit, or the file could not be written: both are logged).
    pub async fn append(&self, samples: Vec<OutSample>, reason: String) -> usize {
        let inner = self.inner.clone();
        let path = self.path.clone();
        let count = samples.len();
        let written = tokio::task::spawn_blocking(move || {
            let mut inner = inner.lock();
            inner.append(&path, &samples, &reason)
        })
        .await;
        match written {
            Ok(Ok(written)) => written,
            Ok(Err(error)) => {
                tracing::error!(path = %self.path.display(), %error,
                    "cannot write {count} dropped samples to the dead-letter file");
                0
            }
            Err(_) => 0,
        }
    }
}

impl Inner {
    fn append(
        &mut self,
        path: &Path,
        samples: &[OutSample],
        reason: &str,
    ) -> std::io::Result<usize> {
        let file = match &mut self.file {
            Some(file) => file,
            None => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let file = OpenOptions::new().create(true).append(true).open(path)?;
                self.bytes = file.metadata()?.len();
                self.file.insert(file)
            }
        };
        let reason: String = reason
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let mut text = String::new();
        let mut written = 0;
        for sample in samples {
            let entry = format!("# reason: {reason}\n{}\n", line_protocol(sample));
            let size = (text.len() + entry.len()) as u64;
            if self.bytes + size > self.bytes_max {
                if !self.full_logged {
                    self.full_logged = true;
                    tracing::error!(path = %path.display(), bytes_max = self.bytes_max,
                        "dead-letter file is full: further dropped samples are only counted");
                }
                break;
            }
            text.push_str(&entry);
            written += 1;
        }
        file.write_all(text.as_bytes())?;
        self.bytes += text.len() as u64;
        Ok(written)
    }
}

/// `metric,label=value… value=<v> <ns>`, escaped as line protocol escapes: commas and
/// spaces in the measurement, commas, equals signs and spaces in tags. Line breaks cannot
/// be escaped in line protocol; they become spaces.
pub fn line_protocol(sample: &OutSample) -> String {
    let mut line = String::new();
    escape(
        &mut line,
        sample.labels.get("__name__").unwrap_or(""),
        false,
    );
    for (name, value) in sample.labels.iter().filter(|(n, _)| *n != "__name__") {
        line.push(',');
        escape(&mut line, name, true);
        line.push('=');
        escape(&mut line, value, true);
    }
    let nanos = sample.timestamp_ms.saturating_mul(1_000_000);
    line.push_str(&format!(" value={} {nanos}", sample.value));
    line
}

fn escape(out: &mut String, text: &str, tag: bool) {
    for c in text.chars() {
        match c {
            ',' | ' ' => {
                out.push('\\');
                out.push(c);
            }
            '=' if tag => out.push_str("\\="),
            '\n' | '\r' => out.push(' '),
            _ => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::Labels;

    fn sample(host: &str, value: f64) -> OutSample {
        OutSample {
            labels: Labels::new(vec![
                ("__name__".to_string(), "cpu load".to_string()),
                ("hostname".to_string(), host.to_string()),
                ("type".to_string(), "a=b".to_string()),
            ]),
            timestamp_ms: 1_700_000_000_123,
            value,
        }
    }

    #[test]
    fn line_protocol_escapes() {
        assert_eq!(
            line_protocol(&sample("f0001,x", 0.5)),
            "cpu\\ load,hostname=f0001\\,x,type=a\\=b value=0.5 1700000000123000000"
        );
    }

    #[tokio::test]
    async fn an_unwritable_file_counts_as_not_written() {
        let dir = tempfile::tempdir();
        let Ok(dir) = dir else {
            return assert!(dir.is_ok());
        };
        // The directory the file would go in is a file.
        let blocker = dir.path().join("blocker");
        assert!(std::fs::write(&blocker, "").is_ok());
        let dead = DeadLetter::new(&blocker, "ep");
        assert_eq!(
            dead.append(vec![sample("h", 1.0)], "x".to_string()).await,
            0
        );
    }

    #[tokio::test]
    async fn appends_with_reason_and_stops_at_the_limit() {
        let dir = tempfile::tempdir();
        let Ok(dir) = dir else {
            return assert!(dir.is_ok());
        };
        let entry = "# reason: rejected: HTTP 400: bad\n".len() as u64
            + line_protocol(&sample("h", 1.0)).len() as u64
            + 1;
        let dead = DeadLetter::with_limit(&dir.path().join("sub"), "ep/1", entry * 3);
        assert!(dead.path().ends_with("sub/ep_1.deadletter"));
        let reason = "rejected: HTTP 400:\nbad".to_string();
        assert_eq!(
            dead.append(vec![sample("h", 1.0), sample("h", 2.0)], reason.clone())
                .await,
            2
        );
        assert_eq!(
            dead.append(vec![sample("h", 3.0), sample("h", 4.0)], reason)
                .await,
            1
        );
        let text = std::fs::read_to_string(dead.path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6, "{text}");
        assert_eq!(lines[0], "# reason: rejected: HTTP 400: bad");
        assert!(lines[5].contains("value=3 "), "{text}");
        // A new handle on the same file counts what is already there.
        let again = DeadLetter::with_limit(&dir.path().join("sub"), "ep/1", entry * 3);
        assert_eq!(
            again.append(vec![sample("h", 5.0)], "x".to_string()).await,
            0
        );
    }
}
