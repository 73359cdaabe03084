//! `bosun-agent logs POD [-c C] [--previous] [-f]`: reads the CRI log files under the root
//! directly (no daemon needed) and prints their text.

use std::io::{BufRead, Seek, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args as ClapArgs;

use bosun_agent::pod::logs::record_text;
use bosun_agent::pod::persist;

use super::Args;

#[derive(ClapArgs, Debug)]
pub struct LogsArgs {
    pub pod: String,
    /// Container name (needed when the pod has several).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// The previous instance's logs (before the last restart).
    #[arg(short = 'p', long)]
    pub previous: bool,
    /// Keep printing new lines.
    #[arg(short = 'f', long)]
    pub follow: bool,
}

fn pod_log_dir(root: &Path, ns: &str, pod: &str) -> anyhow::Result<PathBuf> {
    let prefix = format!("{ns}_{pod}_");
    let dir = root.join("logs");
    let found = std::fs::read_dir(&dir)
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with(&prefix));
    match found {
        Some(e) => Ok(e.path()),
        None => bail!("no logs for pod {ns}/{pod} under {}", dir.display()),
    }
}

/// The containers of the pod whose log directory is `pod_dir` (`<ns>_<name>_<uid>`), from its
/// record under the root; empty when the record cannot be read.
fn spec_containers(root: &Path, pod_dir: &Path) -> Vec<String> {
    let Some(uid) = pod_dir
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.rsplit('_').next())
    else {
        return Vec::new();
    };
    match persist::load(&root.join("pods").join(uid)) {
        Ok(record) => record
            .pod
            .spec
            .all_containers()
            .map(|(_, c)| c.name.clone())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The container to show when `-c` is not given: the only one with logs.
fn choose_container(pod: &str, with_logs: &[String], in_spec: &[String]) -> anyhow::Result<String> {
    match with_logs {
        [one] => Ok(one.clone()),
        [] if in_spec.is_empty() => bail!("pod {pod} has no container logs yet"),
        [] => bail!(
            "pod {pod} has no container logs yet (its containers: {})",
            in_spec.join(", ")
        ),
        several => bail!(
            "pod {pod} has several containers ({}); choose one with -c",
            several.join(", ")
        ),
    }
}

/// Log files of a container, by instance number.
fn instances(dir: &Path) -> Vec<(u32, PathBuf)> {
    let mut v: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_str()?.strip_suffix(".log")?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    v.sort();
    v
}

pub fn run(args: &Args, l: &LogsArgs) -> anyhow::Result<ExitCode> {
    let pod_dir = pod_log_dir(&args.root, &l.namespace, &l.pod)?;
    let container = match &l.container {
        Some(c) => c.clone(),
        None => {
            let mut with_logs: Vec<String> = std::fs::read_dir(&pod_dir)
                .with_context(|| format!("listing {}", pod_dir.display()))?
                .flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            with_logs.sort();
            let label = format!("{}/{}", l.namespace, l.pod);
            choose_container(&label, &with_logs, &spec_containers(&args.root, &pod_dir))?
        }
    };
    let cdir = pod_dir.join(&container);
    let files = instances(&cdir);
    if files.is_empty() {
        bail!("no logs for container {container} of pod {}", l.pod);
    }
    let pick = if l.previous {
        files.len().checked_sub(2).map(|i| files[i].1.clone())
    } else {
        files.last().map(|f| f.1.clone())
    };
    let Some(path) = pick else {
        bail!("container {container} has no previous instance")
    };
    let mut out = std::io::stdout().lock();
    let mut file =
        std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let mut pos = print_from(&mut file, 0, &mut out)?;
    if l.follow && !l.previous {
        let mut current = path;
        loop {
            std::thread::sleep(Duration::from_millis(200));
            pos = print_from(&mut file, pos, &mut out)?;
            if let Some((_, newest)) = instances(&cdir).last() {
                if *newest != current {
                    current = newest.clone();
                    file = std::fs::File::open(&current)?;
                    pos = print_from(&mut file, 0, &mut out)?;
                }
            } else {
                return Ok(ExitCode::SUCCESS);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints complete records from byte `pos`; returns the new position.
fn print_from(file: &mut std::fs::File, pos: u64, out: &mut impl Write) -> anyhow::Result<u64> {
    file.seek(std::io::SeekFrom::Start(pos))?;
    let mut reader = std::io::BufReader::new(file);
    let mut consumed = pos;
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line)?;
        if n == 0 || !line.ends_with('\n') {
            break;
        }
        consumed += n as u64;
        if let Some((text, full)) = record_text(line.trim_end_matches('\n')) {
            out.write_all(text.as_bytes())?;
            if full {
                out.write_all(b"\n")?;
            }
        }
    }
    out.flush()?;
    Ok(consumed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_pod_without_container_logs_says_so_and_names_its_containers() {
        let err = choose_container("default/demo", &[], &names(&["init", "web"]))
            .expect_err("nothing to show");
        assert_eq!(
            err.to_string(),
            "pod default/demo has no container logs yet (its containers: init, web)"
        );
        let err = choose_container("default/demo", &[], &[]).expect_err("nothing to show");
        assert_eq!(
            err.to_string(),
            "pod default/demo has no container logs yet"
        );
    }

    #[test]
    fn one_container_is_picked_and_several_are_listed() {
        let one = choose_container("default/demo", &names(&["web"]), &[]).expect("one");
        assert_eq!(one, "web");
        let err = choose_container("default/demo", &names(&["a", "b"]), &[]).expect_err("two");
        assert_eq!(
            err.to_string(),
            "pod default/demo has several containers (a, b); choose one with -c"
        );
    }
}
