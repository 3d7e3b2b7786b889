//! The demo in its reduced form, as CI runs it: the real `rivulet serve` binary on 127.0.0.1
//! port 0 and the real `rivulet-demo run`, on an even slice of the flights, with every total
//! computed from the slice. A second, smaller run on the same server checks that a previous
//! run's topics and groups are replaced, not counted.
//!
//! The `rivulet` binary belongs to another package, so it must be built first; `cargo test
//! --workspace` does that. `RIVULET_BIN` overrides where it is looked for.

#![expect(
    clippy::unwrap_used,
    reason = "a test fails on any unexpected error, with the panic as its report"
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `rivulet serve` child, killed (by its PID, through its handle) when dropped.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(data_dir: &Path) -> Server {
        let binary = rivulet_binary();
        let mut child = Command::new(&binary)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--log-level",
                "warn",
                "--data-dir",
            ])
            .arg(data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", binary.display()));
        let stdout = child.stdout.take().unwrap();
        // The server prints this line once bound; reading stops at it or when stdout closes.
        let addr = BufReader::new(stdout)
            .lines()
            .take(100)
            .map_while(Result::ok)
            .find_map(|line| line.strip_prefix("listening on ").map(str::to_owned))
            .expect("rivulet serve exited before listening");
        Server { child, addr }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `rivulet`, next to this package's binary unless `RIVULET_BIN` says otherwise.
fn rivulet_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("RIVULET_BIN") {
        return PathBuf::from(path);
    }
    let demo = Path::new(env!("CARGO_BIN_EXE_rivulet-demo"));
    let path = demo.with_file_name(format!("rivulet{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: build it first with `cargo build -p rivulet-cli` (or set RIVULET_BIN)",
        path.display()
    );
    path
}

/// Runs `rivulet-demo run` to completion within `timeout`; returns its exit code and output.
fn run_demo(server: &Server, work_dir: &Path, limit: u64, timeout: Duration) -> (i32, String) {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
    std::fs::create_dir_all(work_dir).unwrap();
    let out_path = work_dir.join(format!("demo-{limit}.out"));
    let out = std::fs::File::create(&out_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rivulet-demo"))
        .args(["run", "--addr", &server.addr, "--limit", &limit.to_string()])
        // Polls return up to 1,000 records, so with commits every 5,000 the archive consumer
        // is killed with up to a few thousand records archived past its committed offsets.
        .args(["--commit-every", "5000", "--timeout", "120", "--data"])
        .arg(&data)
        .arg("--work-dir")
        .arg(work_dir)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the demo did not finish in {timeout:?}; its output:\n{}",
                std::fs::read_to_string(&out_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = std::fs::read_to_string(&out_path).unwrap();
    (status.code().unwrap_or(-1), output)
}

/// The number just before `suffix` in the line of `output` that contains it: `"2,000"` in
/// `"...: 2,000 read again and skipped"`.
fn number_before(output: &str, suffix: &str) -> u64 {
    let line = output
        .lines()
        .find(|line| line.contains(suffix))
        .unwrap_or_else(|| panic!("no line with {suffix:?} in:\n{output}"));
    let head = &line[..line.find(suffix).unwrap()];
    let digits: String = head
        .rsplit(' ')
        .next()
        .unwrap()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number before {suffix:?} in {line:?}"))
}

/// Checks that the archive consumer was killed inside a commit interval, so its successor read
/// records again, and that it got its partitions back through static membership.
fn assert_restart_reread_records(output: &str) {
    assert!(output.contains("with SIGKILL"), "{output}");
    assert!(
        output.contains("PASS restarted member (same instance id) got its partitions back"),
        "{output}"
    );
    let duplicates = number_before(output, " read again and skipped;");
    assert!(duplicates > 0, "the restart read nothing again:\n{output}");
    // At most one commit interval plus one poll.
    assert!(duplicates <= 6_000, "{duplicates} duplicates:\n{output}");
}

#[test]
fn the_demo_passes_every_check_on_a_slice_and_again_on_the_same_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("server"));
    let work_dir = dir.path().join("work");

    let (code, output) = run_demo(&server, &work_dir, 20_000, Duration::from_secs(300));
    assert_eq!(code, 0, "the demo failed:\n{output}");
    assert!(output.contains("all "), "{output}");
    assert!(output.contains("checks passed"), "{output}");
    assert!(!output.contains("FAIL"), "{output}");
    assert_restart_reread_records(&output);
    // An even slice of 336,776 rows with a stride of 17 keeps 19,811 flights.
    assert!(output.contains("loaded 19,811 flights"), "{output}");

    let (code, output) = run_demo(&server, &work_dir, 3_000, Duration::from_secs(300));
    assert_eq!(code, 0, "the second run failed:\n{output}");
    assert!(
        output.contains("deleted topic flights left by an earlier run"),
        "{output}"
    );
    assert!(output.contains("checks passed"), "{output}");
    assert_restart_reread_records(&output);
}
