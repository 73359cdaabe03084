//! What a registry pull reports while its layers come in, for a progress display (the
//! `bosun-agent image pull` bars). The pull itself logs each blob's bytes with `tracing`
//! whether or not anyone watches.

/// Receives a pull's per-layer progress. Called from the pull's tasks: keep it quick.
pub trait PullProgress: Send + Sync {
    /// Layer blob `digest` of `size` bytes is needed (it may turn out to be stored already).
    fn layer(&self, digest: &str, size: u64);
    /// `bytes` more of blob `digest` arrived.
    fn bytes(&self, digest: &str, bytes: u64);
    /// The registry sent blob `digest` again from its start.
    fn restarted(&self, digest: &str);
    /// Layer `digest` is verified and in the store.
    fn done(&self, digest: &str);
}
