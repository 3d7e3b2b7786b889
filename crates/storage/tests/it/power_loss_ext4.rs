//! The power losses of `power_loss` on a real file system, to check the ledger's model against
//! the kernel: an ext4 file system on a loop device is stopped with the shutdown ioctl
//! (`EXT4_IOC_SHUTDOWN` with `NOLOGFLUSH`, what xfstests' `godown` does: nothing more reaches
//! the disk, not even the journal), unmounted, mounted again (the journal replays) and the log
//! reopened.
//!
//! Right before the shutdown the test takes a ledger image, so the kernel's result must hold at
//! least what the image holds: an image that kept more would mean the model promises more than
//! the disk does. Dropping the page cache (`drop_caches`) cannot stand in for this, since the
//! kernel writes dirty pages back before it drops them, and tmpfs has no disk to lose writes on.
//!
//! Needs root, `mkfs.ext4`, loop devices and `python3` (to issue the ioctl). Without them the
//! test prints why and passes.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rivulet_storage::{DurabilityWatch, FlushPolicy, ImageOptions, LogConfig, PartitionLog};
use tempfile::TempDir;

use crate::power_loss::{
    Crash, Failed, Rng, SLACK, TICK, log_sync_durations, ms, reopen, spawn_timer, spawn_writer,
};

/// `EXT4_IOC_SHUTDOWN` (`_IOR('X', 125, __u32)`) with `EXT4_GOING_FLAGS_NOLOGFLUSH` (2), issued
/// when a line arrives on stdin, so the moment is not blurred by the interpreter's start-up.
const SHUTDOWN: &str = "import fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
print('ready', flush=True)
sys.stdin.readline()
fcntl.ioctl(fd, 0x8004587D, struct.pack('I', 2))
print('down', flush=True)";

/// A scratch ext4 file system in a sparse file, mounted through a loop device while it lives.
struct Ext4 {
    _dir: TempDir,
    image: PathBuf,
    mount_point: PathBuf,
    mounted: bool,
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|err| format!("cannot run {program}: {err}"))?;
    if !output.status.success() {
        return Err(format!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(())
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

impl Ext4 {
    /// Makes and mounts a 128 MiB file system, or says why it cannot.
    fn new() -> Result<Ext4, String> {
        let uid = Command::new("id")
            .arg("-u")
            .output()
            .map_err(|err| format!("cannot run id: {err}"))?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return Err("mounting a loop device needs root".to_string());
        }
        run("python3", &["-c", "import fcntl"])?;
        let dir = tempfile::tempdir().map_err(|err| err.to_string())?;
        let image = dir.path().join("ext4.img");
        File::create(&image)
            .and_then(|f| f.set_len(128 << 20))
            .map_err(|err| err.to_string())?;
        run("mkfs.ext4", &["-q", "-F", path_str(&image)])?;
        let mount_point = dir.path().join("mnt");
        std::fs::create_dir(&mount_point).map_err(|err| err.to_string())?;
        let mut fs = Ext4 {
            _dir: dir,
            image,
            mount_point,
            mounted: false,
        };
        fs.mount()?;
        Ok(fs)
    }

    fn mount(&mut self) -> Result<(), String> {
        run(
            "mount",
            &[
                "-o",
                "loop",
                path_str(&self.image),
                path_str(&self.mount_point),
            ],
        )?;
        self.mounted = true;
        Ok(())
    }

    fn unmount(&mut self) -> Result<(), String> {
        run("umount", &[path_str(&self.mount_point)])?;
        self.mounted = false;
        Ok(())
    }

    /// Arms the power loss: returns a trigger that stops the file system when pulled.
    fn arm_shutdown(&self) -> Result<Shutdown, String> {
        let mut child = Command::new("python3")
            .args(["-c", SHUTDOWN, path_str(&self.mount_point)])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|err| format!("cannot run python3: {err}"))?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut line = String::new();
        stdout.read_line(&mut line).map_err(|err| err.to_string())?;
        if line.trim() != "ready" {
            let _ = child.wait();
            return Err(format!("the shutdown helper said {line:?}"));
        }
        Ok(Shutdown {
            child,
            stdin,
            stdout,
        })
    }
}

/// A shutdown helper waiting for its cue.
struct Shutdown {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Shutdown {
    /// Stops the file system: from here on nothing reaches the disk. Returns once it has.
    fn pull(mut self) -> Result<(), String> {
        writeln!(self.stdin).map_err(|err| err.to_string())?;
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .map_err(|err| err.to_string())?;
        let status = self.child.wait().map_err(|err| err.to_string())?;
        if line.trim() != "down" || !status.success() {
            return Err(format!("the shutdown ioctl failed ({status})"));
        }
        Ok(())
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        if self.mounted {
            let _ = self.unmount();
        }
    }
}

/// Figures of one run on ext4.
struct Ext4Figures {
    acked: usize,
    ledger_end: u64,
    kernel_end: u64,
    records_lost: u64,
    oldest_lost: Duration,
    fsync_median: Duration,
    fsync_max: Duration,
    timer_lag_max: Duration,
    /// Between the cue and the helper's reply: how blurred the moment of the power loss is.
    shutdown_window: Duration,
    /// What the first failing append said.
    first_error: Option<String>,
}

/// Writers append for `run`, then a ledger image and, right after, the shutdown.
fn ext4_run(
    fs: &mut Ext4,
    flush: FlushPolicy,
    writers: usize,
    pause: Duration,
    run: Duration,
) -> Ext4Figures {
    let dir = fs
        .mount_point
        .join(format!("log-{writers}-{}", pause.as_micros()));
    let watch = DurabilityWatch::start(&dir).unwrap();
    let config = LogConfig::default()
        .with_segment_bytes(256 << 10)
        .with_index_interval_bytes(1024)
        .with_flush(flush);
    let (log, _) = PartitionLog::open(&dir, config.clone()).unwrap();
    let log = Arc::new(log);
    let acks = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..writers)
        .map(|w| spawn_writer(&log, &acks, &stop, w, pause, move |seq| 1 + (seq % 4)))
        .collect();
    let timer = spawn_timer(&log, &stop);
    thread::sleep(run);

    let ledger_copy = tempfile::tempdir().unwrap();
    let (acked, durable) = (acks.lock().len(), log.durable_offset());
    let image = watch
        .power_loss_image(ledger_copy.path(), ImageOptions::default())
        .unwrap();
    let ledger_crash = Crash {
        acked,
        durable,
        at: image.taken_at(),
    };
    // The shutdown happens between reading the acknowledgements and the helper's reply; ages
    // are taken from the reply, so none comes out younger than it was.
    let shutdown = fs.arm_shutdown().unwrap();
    let (acked, durable) = (acks.lock().len(), log.durable_offset());
    let cue = Instant::now();
    shutdown.pull().unwrap();
    let at = Instant::now();
    let kernel_crash = Crash { acked, durable, at };

    // Appends fail from the shutdown on; the errors are the point, not a failure.
    stop.store(true, Ordering::Release);
    let failed: Vec<Failed> = handles
        .into_iter()
        .filter_map(|h| h.join().unwrap())
        .collect();
    let timer_lag_max = timer.join().unwrap();
    drop(log);
    let syncs = log_sync_durations(&watch);
    drop(watch);
    fs.unmount().unwrap();
    fs.mount().unwrap();

    let all_acks = acks.lock().clone();
    let ledger = reopen(
        ledger_copy.path(),
        &ledger_crash,
        &all_acks,
        &failed,
        &config,
    );
    let kernel = reopen(&dir, &kernel_crash, &all_acks, &failed, &config);
    assert!(
        kernel.log_end >= ledger.log_end,
        "ext4 kept offsets below {}, the ledger's image kept below {}: the model promises more \
         than the disk",
        kernel.log_end,
        ledger.log_end
    );
    Ext4Figures {
        acked: kernel_crash.acked,
        ledger_end: ledger.log_end,
        kernel_end: kernel.log_end,
        records_lost: kernel.records_lost(),
        oldest_lost: kernel.oldest_lost_age(&kernel_crash).unwrap_or_default(),
        fsync_median: syncs.get(syncs.len() / 2).copied().unwrap_or_default(),
        fsync_max: syncs.last().copied().unwrap_or_default(),
        timer_lag_max,
        shutdown_window: at - cue,
        first_error: failed.first().map(|f| f.error.to_string()),
    }
}

fn report(name: &str, f: &Ext4Figures) {
    println!(
        "power loss: ext4 {name}: {} acknowledged, ledger image ends at {}, ext4 at {}, {} \
         records lost, oldest lost {:.1} ms old, fsync median / max {:.2} / {:.2} ms, shutdown \
         within {:.2} ms; appends then failed with: {}",
        f.acked,
        f.ledger_end,
        f.kernel_end,
        f.records_lost,
        ms(f.oldest_lost),
        ms(f.fsync_median),
        ms(f.fsync_max),
        ms(f.shutdown_window),
        f.first_error.as_deref().unwrap_or("nothing")
    );
}

#[test]
fn ext4_shutdown_keeps_at_least_what_the_ledger_promises() {
    let mut fs = match Ext4::new() {
        Ok(fs) => fs,
        Err(reason) => {
            println!("power loss: ext4 check skipped: {reason}");
            return;
        }
    };
    let mut rng = Rng::from_env();

    let run = Duration::from_millis(200 + rng.below(300));
    let every_batch = ext4_run(&mut fs, FlushPolicy::EveryBatch, 3, Duration::ZERO, run);
    report("every-batch", &every_batch);
    assert_eq!(
        every_batch.records_lost, 0,
        "EveryBatch lost acknowledged records"
    );

    let interval = Duration::from_millis(50);
    let run = Duration::from_millis(200 + rng.below(300));
    let pause = Duration::from_micros(300);
    let figures = ext4_run(&mut fs, FlushPolicy::Interval(interval), 1, pause, run);
    report("interval 50 ms", &figures);
    let bound = interval + TICK + figures.fsync_max * 2 + figures.timer_lag_max + SLACK;
    assert!(
        figures.oldest_lost < bound,
        "Interval(50 ms) on ext4 lost a record {:?} old, past the bound of {bound:?}",
        figures.oldest_lost
    );
}
