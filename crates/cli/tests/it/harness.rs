//! Starts `rivulet serve` as a child process and connects gRPC clients to it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rivulet_proto::v1::admin_client::AdminClient;
use rivulet_proto::v1::log_client::LogClient;
use tonic::transport::Channel;

/// A running `rivulet serve`.
pub struct Server {
    pub addr: SocketAddr,
    pub log_file: PathBuf,
    child: Child,
}

impl Server {
    /// Starts the binary on a free port with data in `data_dir`; its log goes to `log_file`.
    pub fn start(data_dir: &Path, log_file: PathBuf) -> Server {
        Self::start_with_args(data_dir, log_file, &[])
    }

    /// Starts the binary like [`Server::start`], with `extra` serve flags.
    pub fn start_with_args(data_dir: &Path, log_file: PathBuf, extra: &[&str]) -> Server {
        let log = std::fs::File::create(&log_file).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_rivulet"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env_remove("RUST_LOG")
            .env("RIVULET_LOG_LEVEL", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("server exited before listening")
                .unwrap();
            if let Some(addr) = line.strip_prefix("listening on ") {
                break addr.parse().unwrap();
            }
        };
        Server {
            addr,
            log_file,
            child,
        }
    }

    /// Starts the binary like [`Server::start`], or returns its log if it exits before
    /// listening.
    pub fn try_start(data_dir: &Path, log_file: PathBuf) -> Result<Server, String> {
        let log = std::fs::File::create(&log_file).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_rivulet"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env_remove("RUST_LOG")
            .env("RIVULET_LOG_LEVEL", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(addr) = line.strip_prefix("listening on ") {
                return Ok(Server {
                    addr: addr.parse().unwrap(),
                    log_file,
                    child,
                });
            }
        }
        let _ = child.wait();
        Err(std::fs::read_to_string(&log_file).unwrap())
    }

    /// Starts the binary through `sh` with the open-file limit (`ulimit -n`) set to `limit`;
    /// `exec` keeps the process id, so kills and `/proc` reads reach the server itself.
    pub fn try_start_with_fd_limit(
        data_dir: &Path,
        log_file: PathBuf,
        limit: u32,
    ) -> Result<Server, String> {
        let log = std::fs::File::create(&log_file).unwrap();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ulimit -n {limit} && exec \"$0\" serve --listen 127.0.0.1:0 --data-dir \"$1\""
            ))
            .arg(env!("CARGO_BIN_EXE_rivulet"))
            .arg(data_dir)
            .env_remove("RUST_LOG")
            .env("RIVULET_LOG_LEVEL", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(addr) = line.strip_prefix("listening on ") {
                return Ok(Server {
                    addr: addr.parse().unwrap(),
                    log_file,
                    child,
                });
            }
        }
        let _ = child.wait();
        Err(std::fs::read_to_string(&log_file).unwrap())
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Open file descriptors of the server process.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count()
    }

    /// A field of `/proc/PID/status` in KiB, e.g. `RssAnon` or `VmHWM`.
    pub fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status
            .lines()
            .find(|l| l.starts_with(&format!("{field}:")))
            .unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    pub async fn clients(&self) -> (LogClient<Channel>, AdminClient<Channel>) {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        (LogClient::new(channel.clone()), AdminClient::new(channel))
    }

    /// SIGKILL: a crash.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits for a graceful exit.
    pub async fn terminate(mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not stop after SIGTERM; its log:\n{}",
                self.log()
            );
            // Async, so clients still open on this runtime can answer the server's goodbye.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
