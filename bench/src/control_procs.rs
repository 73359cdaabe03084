//! The processes of the control benchmark: Debian's etcd (one member, `/usr/bin/etcd` from
//! etcd-server) and the release `bosun-control`, each on free loopback ports with its data
//! under the bench's work directory, and the admin kubeconfig the server writes.
//!
//! Each process runs under a small `sh` wrapper whose stdin is a pipe from this process: when
//! the pipe closes — the [`Guarded`] is dropped, or the bench ends in any way, even killed —
//! the wrapper SIGKILLs it. The wrapper prints the process's pid first, for its RSS.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use base64::{engine::general_purpose::STANDARD, Engine};

pub const ETCD: &str = "/usr/bin/etcd";
const START_LIMIT: Duration = Duration::from_secs(30);

/// Runs `"$@"` with output to `$1`, prints its pid, and SIGKILLs it when stdin closes.
const WRAPPER: &str = r#"
log="$1"; shift
"$@" >>"$log" 2>&1 </dev/null &
pid=$!
echo "$pid"
read -r _
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
exit 0
"#;

/// A process killed when this is dropped (or when this process ends).
pub struct Guarded {
    name: &'static str,
    wrapper: Child,
    stdin: Option<ChildStdin>,
    pub pid: u32,
    log: PathBuf,
}

impl Guarded {
    pub fn spawn(
        name: &'static str,
        log: &Path,
        program: &Path,
        args: &[OsString],
    ) -> Result<Self> {
        let mut wrapper = Command::new("sh")
            .args(["-c", WRAPPER, name])
            .arg(log)
            .arg(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {name} ({})", program.display()))?;
        let stdin = wrapper.stdin.take();
        let stdout = wrapper.stdout.take().context("the wrapper's stdout")?;
        let mut line = String::new();
        // The wrapper echoes the pid right after forking: this read does not block for long.
        BufReader::new(stdout).read_line(&mut line)?;
        let pid = line
            .trim()
            .parse()
            .with_context(|| format!("{name}: no pid from the wrapper ({line:?})"))?;
        Ok(Self {
            name,
            wrapper,
            stdin,
            pid,
            log: log.to_owned(),
        })
    }

    /// Whether the process still runs (not exited, not a zombie).
    pub fn running(&self) -> bool {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid));
        status.is_ok_and(|s| {
            !s.lines()
                .any(|l| l.starts_with("State:") && l.contains('Z'))
        })
    }

    /// Fails with the log's tail if the process has exited.
    pub fn check(&self) -> Result<()> {
        if !self.running() {
            bail!("{} exited; log:\n{}", self.name, self.log_tail());
        }
        Ok(())
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        drop(self.stdin.take()); // EOF: the wrapper kills the process.
        let _ = self.wrapper.wait();
    }
}

/// `count` distinct free loopback ports.
fn free_ports(count: usize) -> Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// A one-member etcd on loopback.
pub struct Etcd {
    pub process: Guarded,
    pub endpoint: String,
}

impl Etcd {
    /// Starts a member with its data in `dir` and waits (bounded) until it is healthy.
    pub fn start(dir: &Path) -> Result<Self> {
        if !Path::new(ETCD).is_file() {
            bail!("{ETCD} missing: apt-get install etcd-server");
        }
        std::fs::create_dir_all(dir)?;
        let ports = free_ports(2)?;
        let client = format!("http://127.0.0.1:{}", ports[0]);
        let peer = format!("http://127.0.0.1:{}", ports[1]);
        let mut args: Vec<OsString> = Vec::new();
        let mut arg = |a: &str| args.push(a.into());
        for a in [
            "--name",
            "bench",
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
            "--initial-cluster",
            &format!("bench={peer}"),
            "--initial-cluster-token",
            &format!("bosun-bench-{}", std::process::id()),
            "--initial-cluster-state",
            "new",
            "--logger",
            "zap",
            "--log-level",
            "warn",
            "--data-dir",
        ] {
            arg(a);
        }
        args.push(dir.join("data").into());
        let process = Guarded::spawn("etcd", &dir.join("etcd.log"), Path::new(ETCD), &args)?;
        let deadline = Instant::now() + START_LIMIT;
        while !healthy(ports[0]) {
            process.check()?;
            if Instant::now() > deadline {
                bail!(
                    "etcd not healthy after {START_LIMIT:?}; log:\n{}",
                    process.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Self {
            process,
            endpoint: client,
        })
    }
}

/// GET /health on an etcd client port: `{"health":"true"}` once it has a leader.
fn healthy(port: u16) -> bool {
    let check = || -> std::io::Result<bool> {
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response.contains(r#""health":"true""#))
    };
    check().unwrap_or(false)
}

/// A running `bosun-control` and the admin credentials it wrote.
pub struct Control {
    pub process: Guarded,
    pub kubeconfig: Kubeconfig,
}

impl Control {
    /// Starts `bin` on a free loopback port with its data in `dir` (on etcd when `etcd` names
    /// an endpoint) and waits (bounded) for the admin kubeconfig it writes once listening.
    pub fn start(bin: &Path, dir: &Path, etcd: Option<&str>) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut args: Vec<OsString> = vec!["--data-dir".into(), dir.join("data").into()];
        for a in [
            "--bind-address",
            "127.0.0.1",
            "--secure-port",
            "0",
            "--log-level",
            "warn",
        ] {
            args.push(a.into());
        }
        if let Some(endpoint) = etcd {
            args.push("--etcd-endpoints".into());
            args.push(endpoint.into());
        }
        let process = Guarded::spawn("bosun-control", &dir.join("control.log"), bin, &args)?;
        let path = dir.join("data").join("admin.kubeconfig");
        let deadline = Instant::now() + START_LIMIT;
        let kubeconfig = loop {
            process.check()?;
            // Read until it parses: a half-written file is retried.
            let parsed = std::fs::read_to_string(&path)
                .map_err(anyhow::Error::from)
                .and_then(|text| Kubeconfig::parse(&text));
            match parsed {
                Ok(kubeconfig) => break kubeconfig,
                Err(error) if Instant::now() > deadline => {
                    bail!(
                        "no usable {} after {START_LIMIT:?} ({error:#}); log:\n{}",
                        path.display(),
                        process.log_tail()
                    )
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        Ok(Self {
            process,
            kubeconfig,
        })
    }
}

/// What the bench needs from an admin kubeconfig: the server and the PEM credentials.
#[derive(Clone, Debug, PartialEq)]
pub struct Kubeconfig {
    pub server: SocketAddr,
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl Kubeconfig {
    /// Parses the first cluster and user of `text`; the server must be `https://` on loopback.
    pub fn parse(text: &str) -> Result<Self> {
        let config: serde_yaml::Value = serde_yaml::from_str(text).context("kubeconfig YAML")?;
        let cluster = &config["clusters"][0]["cluster"];
        let user = &config["users"][0]["user"];
        let field = |value: &serde_yaml::Value, name: &str| -> Result<String> {
            let encoded = value[name]
                .as_str()
                .with_context(|| format!("kubeconfig: no {name}"))?;
            let bytes = STANDARD
                .decode(encoded)
                .with_context(|| format!("kubeconfig: {name} is not base64"))?;
            String::from_utf8(bytes).with_context(|| format!("kubeconfig: {name} is not PEM"))
        };
        let url = cluster["server"]
            .as_str()
            .context("kubeconfig: no server")?;
        let server: SocketAddr = url
            .strip_prefix("https://")
            .and_then(|rest| rest.split('/').next())
            .with_context(|| format!("kubeconfig: server {url} is not https://ADDRESS:PORT"))?
            .parse()
            .with_context(|| format!("kubeconfig: server {url}"))?;
        if !server.ip().is_loopback() {
            bail!("kubeconfig: server {url} is not on loopback");
        }
        Ok(Self {
            server,
            ca_pem: field(cluster, "certificate-authority-data")?,
            cert_pem: field(user, "client-certificate-data")?,
            key_pem: field(user, "client-key-data")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        STANDARD.encode(s)
    }

    #[test]
    fn kubeconfig_yields_the_loopback_server_and_pem_credentials() {
        let text = format!(
            "clusters:\n- name: bosun\n  cluster:\n    server: https://127.0.0.1:41234\n    certificate-authority-data: {}\nusers:\n- name: admin\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
            b64("CA"),
            b64("CERT"),
            b64("KEY")
        );
        let config = Kubeconfig::parse(&text).unwrap();
        assert_eq!(config.server, "127.0.0.1:41234".parse().unwrap());
        assert_eq!(
            (
                config.ca_pem.as_str(),
                config.cert_pem.as_str(),
                config.key_pem.as_str()
            ),
            ("CA", "CERT", "KEY")
        );
    }

    #[test]
    fn kubeconfig_off_loopback_or_without_a_key_is_refused() {
        let remote = format!(
            "clusters:\n- cluster:\n    server: https://10.1.2.3:6443\n    certificate-authority-data: {}\nusers:\n- user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
            b64("CA"),
            b64("C"),
            b64("K")
        );
        let err = Kubeconfig::parse(&remote).unwrap_err().to_string();
        assert!(err.contains("not on loopback"), "{err}");
        let no_key = "clusters:\n- cluster:\n    server: https://127.0.0.1:1\n    certificate-authority-data: Q0E=\nusers:\n- user:\n    client-certificate-data: Qw==\n";
        let err = Kubeconfig::parse(no_key).unwrap_err().to_string();
        assert!(err.contains("client-key-data"), "{err}");
    }

    #[test]
    fn a_guarded_process_dies_with_its_guard() {
        let dir = tempfile::tempdir().unwrap();
        let process = Guarded::spawn(
            "sleep",
            &dir.path().join("log"),
            Path::new("/bin/sleep"),
            &["60".into()],
        )
        .unwrap();
        let pid = process.pid;
        assert!(process.running());
        drop(process);
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
    }
}
