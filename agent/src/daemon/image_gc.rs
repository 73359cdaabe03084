//! The daemon's image garbage collection, like kubelet's: every `--image-gc-period` (kubelet's
//! fixed 5 minutes) and after each pull, [`ImageStore::free_disk_space`] with the node's
//! thresholds; the images in use are those of every pod the daemon holds (running, created or
//! terminating) and of every pod record under `<root>/pods` (pods of `bosun-agent run`
//! too). While a pod record cannot be read its images are unknown, and nothing is collected.
//! When usage stays above the low threshold, kubelet's FreeDiskSpaceFailed warning is logged
//! and, in a cluster, is an event of the Node; a failure that repeats is an ImageGCFailed event.

use std::sync::{Arc, Mutex};

use super::PodTable;
use crate::image::{GcOutcome, ImageError};
use crate::pod::NodeContext;
use crate::spec::Pod;

/// Runs the collection every period and whenever a pull wakes it, until the process stops.
pub(super) fn spawn(ctx: Arc<NodeContext>, table: Arc<Mutex<PodTable>>) {
    let policy = ctx.config.image_gc;
    if !policy.enabled() {
        tracing::info!("image garbage collection is off (--image-gc-high-threshold 100)");
        return;
    }
    tokio::spawn(async move {
        // Whether the last pass failed: like kubelet, a failure is an ImageGCFailed event of
        // the node only when it repeats.
        let mut failed_before = false;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(ctx.config.image_gc_period) => {}
                _ = ctx.image_gc_wake.notified() => {}
            }
            let (c, t) = (ctx.clone(), table.clone());
            let result = tokio::task::spawn_blocking(move || collect(&c, &t)).await;
            let failure = match result {
                Ok(Ok(Some(outcome))) => report(&ctx, &outcome, policy.low_percent),
                Ok(Ok(None)) => None,
                Ok(Err(e)) => {
                    crate::metrics::metrics().image_gc_failed();
                    tracing::warn!(reason = "ImageGCFailed", error = %e, "image garbage collection failed");
                    Some(e.to_string())
                }
                Err(e) => {
                    tracing::warn!(error = %e, "image garbage collection task");
                    None
                }
            };
            if let (Some(message), true) = (&failure, failed_before) {
                ctx.node_warning("ImageGCFailed", message.clone());
            }
            failed_before = failure.is_some();
        }
    });
}

/// One collection; None when usage is below the high threshold or pod records are unreadable.
fn collect(ctx: &NodeContext, table: &Mutex<PodTable>) -> Result<Option<GcOutcome>, ImageError> {
    let pods_dir = ctx.config.root.join("pods");
    let in_use = || {
        let mut images = Vec::new();
        {
            let t = table.lock().unwrap_or_else(|p| p.into_inner());
            if !t.unreadable.is_empty() {
                tracing::warn!("not collecting images: some pod records cannot be read");
                return None;
            }
            for e in t.pods.values().chain(t.terminating.values()) {
                images.extend(pod_images(&e.pod));
            }
        }
        match crate::pod::persist::load_all(&pods_dir) {
            Ok(found) if found.unreadable.is_empty() => {
                for r in &found.records {
                    images.extend(pod_images(&r.pod));
                }
                Some(images)
            }
            Ok(_) => {
                tracing::warn!("not collecting images: some pod records cannot be read");
                None
            }
            Err(e) => {
                tracing::warn!(dir = %pods_dir.display(), error = %e, "not collecting images: listing pod records");
                None
            }
        }
    };
    ctx.images.write_uses()?;
    ctx.images.free_disk_space(ctx.config.image_gc, in_use)
}

fn pod_images(pod: &Pod) -> impl Iterator<Item = String> + '_ {
    pod.spec
        .init_containers
        .iter()
        .chain(&pod.spec.containers)
        .map(|c| c.image.clone())
}

/// Logs and counts a pass; when it could not reach the low threshold, also a
/// FreeDiskSpaceFailed event of the node, whose message it returns as the pass's failure.
fn report(ctx: &NodeContext, outcome: &GcOutcome, low: u8) -> Option<String> {
    crate::metrics::metrics().images_collected(outcome.removed.len() as u64);
    tracing::info!(
        removed = outcome.removed.len(),
        usage_before = outcome.before.used_percent(),
        usage_after = outcome.after.used_percent(),
        bytes_freed = outcome.bytes_freed(),
        "image garbage collection"
    );
    if outcome.reached_low {
        return None;
    }
    crate::metrics::metrics().image_gc_failed();
    let message = format!(
        "Failed to garbage collect required amount of images. Attempted to free {} bytes, but only found {} bytes eligible to free.",
        outcome.bytes_to_free,
        outcome.bytes_freed()
    );
    tracing::warn!(
        reason = "FreeDiskSpaceFailed",
        low_threshold = low,
        usage = outcome.after.used_percent(),
        "{message}"
    );
    ctx.node_warning("FreeDiskSpaceFailed", message.clone());
    Some(message)
}
