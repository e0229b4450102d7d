//! An output folder shared with other processes and with killed runs: a lock, so that a second
//! run into the same folder stops with a message naming it; the removal of temporary files that
//! a killed run left (`.<name>.<pid>.tmp`, see `sglrp::io::write_atomic`); and `summary.jsonl`
//! appended line by line, so that a killed run keeps the lines of what it finished; and
//! `fingerprints.jsonl`, which settings made each image's outputs.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sglrp::cluster::{Shard, shard_file};
use sglrp::io::write_atomic;

use super::io_reason;

/// The lock file of a run into a folder: `.sglrp.lock`, or one per shard (`.sglrp.2-of-3.lock`),
/// since the shards of one run share their folder.
pub fn lock_name(shard: Shard) -> String {
    shard_file(".sglrp", "lock", shard)
}

/// Holds an output folder for one run; the lock is removed when this drops.
pub struct Claimed {
    lock: PathBuf,
}

impl Drop for Claimed {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.lock);
    }
}

/// Whether process `pid` runs (on Linux, through /proc; elsewhere assumed to).
fn alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    !proc.is_dir() || proc.join(pid.to_string()).exists()
}

/// Creates `out`, checks that files can be written in it, takes its lock (`lock_name`, one per
/// shard when a run is sharded) and removes what killed runs left.
pub fn claim(out: &Path, lock_name: &str) -> Result<Claimed, String> {
    let fail = |e: String| format!("output folder {}: {e}", out.display());
    std::fs::create_dir_all(out).map_err(|e| fail(e.to_string()))?;
    let probe = out.join(".sglrp-write-check");
    write_atomic(&probe, b"").map_err(|e| fail(io_reason(e)))?;
    let _ = std::fs::remove_file(probe);
    let lock = out.join(lock_name);
    let me = std::process::id();
    for _ in 0..2 {
        match OpenOptions::new().write(true).create_new(true).open(&lock) {
            Ok(mut file) => {
                file.write_all(format!("{me}\n").as_bytes())
                    .map_err(|e| fail(e.to_string()))?;
                remove_stale_temporaries(out);
                return Ok(Claimed { lock });
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let holder = std::fs::read_to_string(&lock).unwrap_or_default();
                match holder.trim().parse::<u32>() {
                    Ok(pid) if pid != me && alive(pid) => {
                        return Err(fail(format!(
                            "another sglrp run (pid {pid}) is writing here and holds its lock {}; \
                             wait for it, use another --out, or remove the lock if no run is going",
                            lock.display()
                        )));
                    }
                    // A killed run's lock, or one being written this instant: take it over.
                    _ => {
                        let _ = std::fs::remove_file(&lock);
                    }
                }
            }
            Err(e) => return Err(fail(format!("{}: {e}", lock.display()))),
        }
    }
    Err(fail(format!("cannot take the lock {}", lock.display())))
}

/// Removes `.<name>.<pid>.tmp` files whose process is gone.
fn remove_stale_temporaries(out: &Path) {
    for entry in walkdir::WalkDir::new(out).into_iter().flatten() {
        let name = entry.file_name().to_string_lossy();
        let Some(rest) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) else {
            continue;
        };
        let pid = rest.rsplit('.').next().and_then(|p| p.parse::<u32>().ok());
        if entry.file_type().is_file() && pid.is_some_and(|pid| !alive(pid)) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// `summary.jsonl`, started afresh by each run and appended as images finish.
pub struct Summary {
    path: PathBuf,
    file: File,
}

impl Summary {
    pub fn create(path: PathBuf) -> Result<Summary, String> {
        let file = File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Summary { path, file })
    }

    /// Appends one line (a JSON record) and flushes it.
    pub fn append(&mut self, line: &str) -> Result<(), String> {
        self.file
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|_| self.file.flush())
            .map_err(|e| format!("{}: {e}", self.path.display()))
    }
}

/// `fingerprints.jsonl`: per image folder, the fingerprint of the settings its outputs were made
/// with, one `{"key", "settings"}` line per change, appended (the last line of a key holds; an
/// empty `settings` marks outputs being rewritten).
pub struct Fingerprints {
    path: PathBuf,
    file: Mutex<File>,
    known: HashMap<String, String>,
}

impl Fingerprints {
    pub fn open(out: &Path) -> Result<Fingerprints, String> {
        let path = out.join("fingerprints.jsonl");
        let fail = |e: std::io::Error| format!("{}: {e}", path.display());
        let text = match std::fs::read(&path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(fail(e)),
        };
        let mut known = HashMap::new();
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue; // a line cut short by a killed run
            };
            if let (Some(key), Some(settings)) = (v["key"].as_str(), v["settings"].as_str()) {
                known.insert(key.to_string(), settings.to_string());
            }
        }
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .map_err(fail)?;
        Ok(Fingerprints {
            path,
            file: Mutex::new(file),
            known,
        })
    }

    /// The fingerprint of `key`'s outputs when the run started.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.known
            .get(key)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    /// Records that `key`'s outputs are now made with `settings` (empty: being rewritten).
    pub fn set(&self, key: &str, settings: &str) -> Result<(), String> {
        let line = serde_json::json!({ "key": key, "settings": settings }).to_string() + "\n";
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        file.write_all(line.as_bytes())
            .and_then(|_| file.flush())
            .map_err(|e| format!("{}: {e}", self.path.display()))
    }
}
