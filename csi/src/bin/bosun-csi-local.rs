//! `bosun-csi-local`: bosun's CSI driver for file-backed ext4 volumes on this node.
//!
//! `bosun-csi-local --endpoint unix:///var/lib/bosun/plugins/local.csi.bosun.dev/csi.sock
//!  --node-id NODE --state-dir /var/lib/bosun-csi-local`

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;

use bosun_csi::local::{self, Config, Driver};

#[derive(Debug, Parser)]
#[command(name = "bosun-csi-local", version, about)]
struct Args {
    /// The socket to serve on: `unix:///path` (or an absolute path).
    #[arg(long, env = "CSI_ENDPOINT")]
    endpoint: String,
    /// This node's id, reported by NodeGetInfo and used as the volumes' topology.
    #[arg(long)]
    node_id: String,
    /// Where volume images and their records are kept (survives restarts).
    #[arg(long)]
    state_dir: PathBuf,
    /// The driver name reported by GetPluginInfo.
    #[arg(long, default_value = "local.csi.bosun.dev")]
    driver_name: String,
    /// NodeGetInfo's max_volumes_per_node.
    #[arg(long, default_value_t = 64)]
    max_volumes: i64,
}

fn socket_path(endpoint: &str) -> Result<PathBuf> {
    let path = endpoint
        .strip_prefix("unix://")
        .or_else(|| endpoint.strip_prefix("unix:"))
        .unwrap_or(endpoint);
    let path = PathBuf::from(path);
    if !path.is_absolute() {
        bail!("--endpoint {endpoint:?}: expected unix:///absolute/path");
    }
    Ok(path)
}

async fn shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::warn!("no SIGTERM handler ({e}); stopping on SIGINT only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if args.node_id.is_empty() {
        bail!("--node-id must not be empty");
    }
    let socket = socket_path(&args.endpoint)?;
    let driver = Driver::new(Config {
        driver_name: args.driver_name,
        node_id: args.node_id,
        state_dir: args.state_dir.clone(),
        max_volumes: args.max_volumes,
    })
    .with_context(|| format!("opening state dir {}", args.state_dir.display()))?;
    tracing::info!(socket = %socket.display(), "bosun-csi-local serving");
    local::serve(driver, &socket, shutdown())
        .await
        .context("bosun-csi-local")?;
    Ok(())
}
