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

fn table(pods: &[PodStatus]) -> String {
    let mut out = format!(
        "{:<12} {:<28} {:<10} {:<6} {:<15} {:<16} {:<34} {:>8} {:<6}\n",
        "NAMESPACE", "POD", "PHASE", "READY", "IP", "CONTAINER", "STATE", "RESTARTS", "CREADY"
    );
    for p in pods {
        let all = p
            .init_container_statuses
            .iter()
            .chain(p.container_statuses.iter());
        for (i, c) in all.enumerate() {
            let (ns, name, phase, ready, ip) = if i == 0 {
                (
                    p.namespace.as_str(),
                    p.name.as_str(),
                    format!("{:?}", p.phase),
                    p.ready.to_string(),
                    p.pod_ip.as_deref().unwrap_or("-"),
                )
            } else {
                ("", "", String::new(), String::new(), "")
            };
            let cname = if c.init {
                format!("{} (init)", c.name)
            } else {
                c.name.clone()
            };
            out.push_str(&format!(
                "{:<12} {:<28} {:<10} {:<6} {:<15} {:<16} {:<34} {:>8} {:<6}\n",
                ns,
                name,
                phase,
                ready,
                ip,
                cname,
                state_text(&c.state),
                c.restart_count,
                c.ready
            ));
        }
    }
    out
}
