//! `bosun-agent dns-serve` (hidden): the node's cluster DNS server alone, its zone loaded once
//! from a file of Services and EndpointSlices instead of the cluster's watch. The same server
//! as the daemon's (`dns::serve_zone`, on a single-threaded event loop like the daemon's),
//! for the DNS benchmark and for trying zones by hand. It binds in the calling process's
//! netns, and forwards names outside the zone only to the `--upstream`s it is given.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, RwLock};

use anyhow::{bail, Context};
use bosun_agent::dns::{self, records::Zone, DnsServing};
use bosun_agent::spec::{parse_manifests, Manifest};

use super::Args;

#[derive(clap::Args, Debug)]
pub struct DnsServeArgs {
    /// Services and EndpointSlices (YAML or JSON documents, or a List) to answer for.
    #[arg(long, value_name = "FILE")]
    pub records: PathBuf,
    /// The UDP and TCP address to serve on.
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: SocketAddr,
    /// Where names outside the zone are forwarded (repeatable; none: they get SERVFAIL).
    #[arg(long, value_name = "ADDR:PORT")]
    pub upstream: Vec<SocketAddr>,
}

/// The zone of `text`'s Services and EndpointSlices; any other kind is refused by name.
pub fn zone_of(domain: &str, text: &str) -> anyhow::Result<Zone> {
    let (mut services, mut slices) = (Vec::new(), Vec::new());
    for manifest in parse_manifests(text)? {
        match manifest {
            Manifest::Service(s) => services.push(s),
            Manifest::EndpointSlice(s) => slices.push(s),
            Manifest::Pod(p) => bail!("Pod {}: only Services and EndpointSlices", p.metadata.name),
            Manifest::Other { kind, name, .. } => {
                bail!("{kind} {name}: only Services and EndpointSlices")
            }
        }
    }
    Ok(Zone::build(domain, &services, &slices))
}

pub fn run(args: &Args, serve: &DnsServeArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&serve.records)
        .with_context(|| format!("reading {}", serve.records.display()))?;
    let zone = zone_of(&args.cluster_domain, &text)
        .with_context(|| format!("--records {}", serve.records.display()))?;
    let sockets = dns::bind(None, serve.listen)
        .with_context(|| format!("binding the DNS server on {}", serve.listen))?;
    let serving = DnsServing {
        domain: args.cluster_domain.clone(),
        upstreams: serve.upstream.clone(),
        resolv_conf: PathBuf::from("(--upstream)"),
    };
    let rt = super::tokio_runtime()?;
    rt.block_on(dns::serve_zone(
        sockets,
        serving,
        Arc::new(RwLock::new(Arc::new(zone))),
    ))
    .context("the DNS server stopped")?;
    Ok(ExitCode::SUCCESS)
}
