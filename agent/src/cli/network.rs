//! `bosun-agent network teardown`: removes the node routes an agent installed (the blackholes
//! for --pod-cidr and --service-cidr, marked `proto 176`), in --node-netns or the host's
//! network namespace. The node daemon keeps its routes when it stops (pods keep running and
//! keep using them); this is how they go.

use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Subcommand;

use bosun_agent::daemon::api::{call, Request};
use bosun_agent::network::node::{describe, node_routes, teardown};

use super::{cidrs, Args};

#[derive(Subcommand, Debug)]
pub enum NetworkCommand {
    /// Remove the node routes for --pod-cidr and --service-cidr (stop the daemon first).
    Teardown {
        /// Also remove every other route marked as an agent's (`proto 176`), e.g. for CIDRs
        /// an agent used before.
        #[arg(long)]
        all: bool,
    },
}

pub fn run(args: &Args, action: &NetworkCommand) -> anyhow::Result<ExitCode> {
    let NetworkCommand::Teardown { all } = action;
    if call(&args.run_dir, &Request::Ps).is_ok() {
        bail!(
            "an agent is running on --run-dir {}: stop it first (its pods keep running)",
            args.run_dir.display()
        );
    }
    let (pod, service) = cidrs(args)?;
    let routes = node_routes(pod, service, &[])?;
    let removed = bosun_agent::sys::netns_exec::in_netns(args.node_netns.as_deref(), || {
        teardown(&routes, *all)
    })
    .context("entering --node-netns")?
    .context("removing node routes")?;
    if removed.is_empty() {
        println!("no node route of bosun for --pod-cidr {pod} or --service-cidr {service}");
    }
    for r in &removed {
        println!("removed {}", describe(r, |_| None));
    }
    Ok(ExitCode::SUCCESS)
}
