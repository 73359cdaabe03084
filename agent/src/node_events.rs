//! Events about the node itself — kubelet's events on its `nodeRef`, such as the image garbage
//! collection's `FreeDiskSpaceFailed` and `ImageGCFailed` — posted to the API once the agent
//! has joined a cluster (`cluster/events.rs`); an agent on its own only logs them.

/// Where the node's events go.
pub trait NodeEvents: Send + Sync {
    /// A Warning event about this node with kubelet's `reason` and `message`.
    fn warning(&self, reason: &'static str, message: String);
}
