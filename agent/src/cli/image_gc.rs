//! The image garbage collection flags of the node daemon: kubelet's thresholds, and how often
//! they are checked.

use std::time::Duration;

use anyhow::bail;
use bosun_agent::image::GcPolicy;

#[derive(clap::Args, Debug)]
pub struct ImageGcArgs {
    /// Percent of the image store's filesystem in use at or above which unused images are
    /// removed, least recently used first (kubelet's flag); 100 turns the collection off.
    #[arg(
        long = "image-gc-high-threshold",
        value_name = "PERCENT",
        default_value_t = 85
    )]
    pub high: u8,
    /// Percent of the filesystem in use the collection frees down to (kubelet's flag).
    #[arg(
        long = "image-gc-low-threshold",
        value_name = "PERCENT",
        default_value_t = 80
    )]
    pub low: u8,
    /// How often the daemon checks the thresholds, besides after each pull (kubelet's fixed
    /// period is 5 minutes).
    #[arg(long = "image-gc-period", value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    pub period: Duration,
    /// Minimum age of an unused image before it may be collected, counted from its last use,
    /// pull or import (kubelet's flag, from when it first saw the image).
    #[arg(long = "minimum-image-ttl-duration", value_name = "DURATION", default_value = "2m", value_parser = humantime::parse_duration)]
    pub minimum_age: Duration,
}

impl ImageGcArgs {
    /// The checked thresholds and period.
    pub fn policy(&self) -> anyhow::Result<(GcPolicy, Duration)> {
        let policy = GcPolicy::new(self.high, self.low)
            .map_err(anyhow::Error::msg)?
            .with_minimum_age(self.minimum_age);
        if self.period.is_zero() {
            bail!("--image-gc-period must be longer than 0s");
        }
        Ok((policy, self.period))
    }
}
