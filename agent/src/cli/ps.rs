//! `bosun-agent ps`: the daemon's pods and containers with phase, restarts and exit codes.

use std::process::ExitCode;

use anyhow::bail;

use bosun_agent::daemon::api::{call, Request, Response};
use bosun_agent::pod::{ContainerState, PodStatus};

use super::Args;

pub fn run(args: &Args, json: bool) -> anyhow::Result<ExitCode> {
    let pods = match call(&args.run_dir, &Request::Ps)? {
        Response::Pods(p) => p,
        Response::Error(e) => bail!("agent: {e}"),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&pods)?);
    } else {
        print!("{}", table(&pods));
    }
    Ok(ExitCode::SUCCESS)
}

fn state_text(s: &ContainerState) -> String {
    match s {
        ContainerState::Waiting { reason, .. } => format!("Waiting({reason})"),
        ContainerState::Running { .. } => "Running".into(),
        ContainerState::Terminated {
            exit_code, reason, ..
        } => format!("Terminated({reason}, exit {exit_code})"),
    }
}

const HEADER: [&str; 9] = [
    "NAMESPACE",
    "POD",
    "PHASE",
    "READY",
    "IP",
    "CONTAINER",
    "STATE",
    "RESTARTS",
    "CREADY",
];

/// One row per container; the pod's own columns only on its first row.
fn rows(pods: &[PodStatus]) -> Vec<Vec<String>> {
    let mut rows = vec![HEADER.iter().map(|h| h.to_string()).collect()];
    for p in pods {
        let all = p
            .init_container_statuses
            .iter()
            .chain(p.container_statuses.iter());
        for (i, c) in all.enumerate() {
            let pod_cols = if i == 0 {
                vec![
                    p.namespace.clone(),
                    p.name.clone(),
                    format!("{:?}", p.phase),
                    p.ready.to_string(),
                    p.pod_ip.clone().unwrap_or_else(|| "-".into()),
                ]
            } else {
                vec![String::new(); 5]
            };
            let cname = if c.init {
                format!("{} (init)", c.name)
            } else {
                c.name.clone()
            };
            let mut row = pod_cols;
            row.extend([
                cname,
                state_text(&c.state),
                c.restart_count.to_string(),
                c.ready.to_string(),
            ]);
            rows.push(row);
        }
    }
    rows
}

/// Aligns `rows` in columns as wide as their widest cell (kubectl's tabwriter: three spaces
/// between columns, none after the last).
fn align(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|k| {
            rows.iter()
                .filter_map(|r| r.get(k))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (k, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if k + 1 < row.len() {
                let pad = widths[k] - cell.chars().count() + 3;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn table(pods: &[PodStatus]) -> String {
    align(&rows(pods))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bosun_agent::pod::{ContainerStatus, PodPhase};

    fn container(name: &str, init: bool) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            image: "bosun.test/busybox:1".into(),
            init,
            state: ContainerState::Running {
                started_at: String::new(),
            },
            last_state: None,
            restart_count: 12345,
            ready: true,
            pid: None,
        }
    }

    fn pod(ns: &str, name: &str) -> PodStatus {
        PodStatus {
            namespace: ns.into(),
            name: name.into(),
            uid: "u".into(),
            phase: PodPhase::Running,
            reason: String::new(),
            start_time: None,
            pod_ip: Some("10.244.0.17".into()),
            pod_ips: Vec::new(),
            qos_class: "BestEffort".into(),
            message: String::new(),
            ready: true,
            init_container_statuses: vec![container("a-rather-long-init-container-name", true)],
            container_statuses: vec![container("web", false)],
            ephemeral_container_statuses: Vec::new(),
            warnings: Vec::new(),
            pulls: Default::default(),
            pulls_begun: Default::default(),
        }
    }

    #[test]
    fn columns_are_as_wide_as_their_longest_cell() {
        let pods = [
            pod(
                "kube-system-with-a-long-namespace",
                "a-pod-name-much-longer-than-twenty-eight-characters",
            ),
            pod("default", "p"),
        ];
        let rows = rows(&pods);
        let text = table(&pods);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), rows.len());
        // Each column starts at the same offset on every line, right after the widest cell
        // of the column before it and three spaces.
        let mut start = 0;
        for k in 0..HEADER.len() {
            for (line, row) in lines.iter().zip(&rows) {
                let cell = &row[k];
                assert!(
                    line.get(start..)
                        .is_some_and(|rest| rest.starts_with(cell.as_str())),
                    "column {k} ({}) does not start at {start} in {line:?}\n{text}",
                    HEADER[k]
                );
                if start > 0 {
                    assert_eq!(&line[start - 3..start], "   ", "{line:?}");
                }
            }
            start += rows.iter().map(|r| r[k].len()).max().unwrap_or(0) + 3;
        }
        assert!(lines.iter().all(|l| !l.ends_with(' ')), "{text}");
    }
}
