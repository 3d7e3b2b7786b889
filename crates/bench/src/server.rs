//! The server under test, seen from outside: starting a `rivulet` binary on a temporary data
//! directory and a free 127.0.0.1 port, its peak RSS from /proc, and the bytes under its data
//! directory. Owns the spawned process: it is stopped (by its own pid) when dropped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::Context;

/// A `rivulet serve` process started for a run.
#[derive(Debug)]
pub struct SpawnedServer {
    child: Child,
    address: String,
    dir: tempfile::TempDir,
}

impl SpawnedServer {
    /// Starts `binary serve` on 127.0.0.1 port 0 and a new temporary data directory, and
    /// waits for its `listening on ADDR` line.
    ///
    /// # Errors
    ///
    /// When the binary cannot be started or exits before it listens.
    pub fn start(binary: &Path) -> anyhow::Result<SpawnedServer> {
        let dir = tempfile::Builder::new()
            .prefix("rivulet-bench-")
            .tempdir()
            .context("cannot create a temporary data directory")?;
        let mut child = Command::new(binary)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .env("RIVULET_LOG_LEVEL", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let stdout = child.stdout.take().context("server stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        // Reading ends at the `listening on` line, or when the server exits and closes stdout.
        let address = loop {
            let Some(line) = lines.next() else {
                let _ = child.kill();
                let _ = child.wait();
                anyhow::bail!("{} exited before listening", binary.display());
            };
            let line = line.context("reading server output")?;
            if let Some(address) = line.strip_prefix("listening on ") {
                break address.trim().to_owned();
            }
        };
        // Keep draining its output so a later line never meets a closed pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(SpawnedServer {
            child,
            address,
            dir,
        })
    }

    /// `host:port` the server listens on.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }
}

impl Drop for SpawnedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Peak resident set size of process `pid` (VmHWM), in bytes.
pub fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Bytes allocated on disk under `dir` (blocks, as `du` counts them), or `None` if it cannot
/// be walked. Bounded by the directory tree; symbolic links are not followed.
pub fn disk_usage(dir: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).ok()?;
        total += meta.blocks() * 512;
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).ok()? {
                stack.push(entry.ok()?.path());
            }
        }
    }
    Some(total)
}
