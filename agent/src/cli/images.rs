//! `bosun-agent image import|pull|ls|rm`: the local image store from the command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use bosun_agent::image::{ImageStore, Puller};

use super::Args;

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// Import an OCI image layout directory, OCI tarball or docker-archive tarball.
    Import { path: PathBuf },
    /// Pull an image from its registry (HTTPS, or plain HTTP for --insecure-registry), with a
    /// progress bar per layer when stderr is a terminal.
    Pull { reference: String },
    /// List images.
    Ls,
    /// Remove an image reference (and layers nothing else uses).
    Rm { reference: String },
}

pub fn run(args: &Args, cmd: &ImageCommand) -> anyhow::Result<ExitCode> {
    let store = ImageStore::open(&args.root.join("images")).context("opening the image store")?;
    match cmd {
        ImageCommand::Import { path } => {
            for img in store
                .import(path)
                .with_context(|| format!("importing {}", path.display()))?
            {
                println!("imported {} {}", img.reference, img.digest);
            }
        }
        ImageCommand::Pull { reference } => {
            let mut puller = Puller::new(&args.insecure_registries)
                .context("registry client")?
                .with_node_credentials(super::node_keyring(args)?);
            if let Some(bars) = super::progress::layer_bars() {
                puller = puller.with_progress(bars);
            }
            let rt = super::tokio_runtime()?;
            let img = rt.block_on(puller.pull(&store, reference))?;
            println!("pulled {} {}", img.reference, img.digest);
        }
        ImageCommand::Ls => {
            println!("{:<48} {:<20} {:>10}", "REFERENCE", "DIGEST", "SIZE");
            for img in store.list()? {
                let short: String = img
                    .digest
                    .trim_start_matches("sha256:")
                    .chars()
                    .take(12)
                    .collect();
                println!(
                    "{:<48} sha256:{:<13} {:>10}",
                    img.reference, short, img.size
                );
            }
        }
        ImageCommand::Rm { reference } => {
            store
                .remove(reference)
                .with_context(|| format!("removing {reference}"))?;
            println!("removed {reference}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
