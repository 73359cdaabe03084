//! The accept loops of the metrics endpoint and the API socket under fd exhaustion, in a child
//! process (RLIMIT_NOFILE is per process): the child serves both, lowers its fd limit and
//! fills it, the parent queues a connection on each and measures the child's CPU time while
//! accept() keeps failing with EMFILE, then lets the child free its fds and waits for both
//! loops to accept again.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::daemon::{api, PodTable};

const CHILD_ENV: &str = "BOSUN_TEST_EMFILE_CHILD";
/// The child's fd limit while it is exhausted.
const FD_LIMIT: u64 = 128;
/// How long the CPU time of the failing loops is measured.
const WINDOW: Duration = Duration::from_secs(3);
/// CPU the child may use in the window (spinning would use nearly all of it).
const MAX_CPU: Duration = Duration::from_millis(300);

#[test]
#[ignore = "the child half of accept_errors_back_off_and_log_once_per_episode"]
fn emfile_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("agent.sock");
        let api_listener = tokio::net::UnixListener::bind(&sock).expect("bind api");
        let metrics_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind metrics");
        let port = metrics_listener.local_addr().expect("addr").port();
        tokio::spawn(crate::metrics::http::serve(metrics_listener));
        let pods = Arc::new(Mutex::new(PodTable::default()));
        tokio::spawn(api::serve(api_listener, pods));
        let (free_tx, free_rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
            let _ = free_tx.send(());
        });
        let (_, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .expect("getrlimit");
        nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, FD_LIMIT, hard)
            .expect("setrlimit");
        let mut fillers = Vec::new();
        loop {
            match std::fs::File::open("/dev/null") {
                Ok(f) => fillers.push(f),
                Err(e) if e.raw_os_error() == Some(libc::EMFILE) => break,
                Err(e) => panic!("open /dev/null: {e}"),
            }
        }
        println!("READY {port} {}", sock.display());
        let _ = free_rx.await;
        drop(fillers);
        println!("FREED");
        std::future::pending::<()>().await;
    });
}

/// User + system CPU time of `pid` (from /proc/PID/stat, in clock ticks of 10 ms).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after_comm = stat.rsplit_once(')').expect("comm").1;
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    Duration::from_millis(ticks * 10)
}

/// Lines of a child's stream, read on a thread.
fn lines_of(
    stream: impl Read + Send + 'static,
) -> (mpsc::Receiver<String>, Arc<Mutex<Vec<String>>>) {
    let (tx, rx) = mpsc::channel();
    let all = Arc::new(Mutex::new(Vec::new()));
    let seen = all.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            seen.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(line.clone());
            let _ = tx.send(line);
        }
    });
    (rx, all)
}

fn wait_line(rx: &mpsc::Receiver<String>, prefix: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            // libtest may print "test NAME ... " before the child's first line.
            Ok(line) => {
                if let Some(at) = line.find(prefix) {
                    return line[at..].to_string();
                }
            }
            Err(e) => panic!("waiting for {prefix:?} from the child: {e}"),
        }
    }
}

/// Waits until `count` lines of the log match `pred`; returns the log.
fn wait_log(
    log: &Mutex<Vec<String>>,
    what: &str,
    pred: impl Fn(&str) -> bool,
    count: usize,
) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let lines = log.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if lines.iter().filter(|l| pred(l)).count() >= count {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; child log:\n{}",
            lines.join("\n")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_child() -> (KillOnDrop, ChildStdout, std::process::ChildStderr) {
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "accept::emfile::emfile_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    (KillOnDrop(child), stdout, stderr)
}

#[test]
fn accept_errors_back_off_and_log_once_per_episode() {
    let (mut child, stdout, stderr) = spawn_child();
    let (out, _) = lines_of(stdout);
    let (_, log) = lines_of(stderr);
    let ready = wait_line(&out, "READY ", Duration::from_secs(30));
    let mut parts = ready.split_whitespace().skip(1);
    let port: u16 = parts.next().and_then(|p| p.parse().ok()).expect("port");
    let sock = parts.next().expect("socket path").to_string();

    // One queued connection per server: each accept() now fails with EMFILE.
    let _tcp = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect metrics");
    let _unix = std::os::unix::net::UnixStream::connect(&sock).expect("connect api");
    let failed =
        |server: &'static str| move |l: &str| l.contains("accept failed") && l.contains(server);
    wait_log(&log, "the metrics accept failure", failed("metrics"), 1);
    wait_log(&log, "the api accept failure", failed("api"), 1);

    let pid = child.0.id();
    let before = cpu_time(pid);
    std::thread::sleep(WINDOW);
    let used = cpu_time(pid) - before;
    assert!(
        used < MAX_CPU,
        "the child used {used:?} of CPU in {WINDOW:?} while accept() failed"
    );

    // Freed fds: both loops accept again (each says so once), and metrics are served.
    child
        .0
        .stdin
        .as_mut()
        .expect("stdin")
        .write_all(b"free\n")
        .expect("free");
    wait_line(&out, "FREED", Duration::from_secs(10));
    let again = |server: &'static str| {
        move |l: &str| l.contains("accepting connections again") && l.contains(server)
    };
    wait_log(&log, "metrics accepting again", again("metrics"), 1);
    let lines = wait_log(&log, "api accepting again", again("api"), 1);
    for server in ["metrics", "api"] {
        let n = lines.iter().filter(|l| failed(server)(l)).count();
        assert_eq!(
            n,
            1,
            "{server}: accept failure logged {n} times:\n{}",
            lines.join("\n")
        );
    }
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect metrics");
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
        .expect("write");
    let mut body = String::new();
    s.read_to_string(&mut body).expect("read");
    assert!(body.starts_with("HTTP/1.0 200 OK"), "{body}");
}
