//! The controllers behind the API, as kube-controller-manager runs them: each follows the
//! store and writes through [`client::Loopback`] — the same validation and storage path as
//! kubectl's requests, in process. Today: the garbage collector (`gc`).

pub mod client;
mod gc;

use std::sync::Arc;

use crate::api::ApiState;

/// The user the controllers act as.
pub const CONTROLLER_USER: &str = "system:kube-controller-manager";

/// The running controllers; dropping this stops them.
pub struct Controllers {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Controllers {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Starts every controller.
pub fn spawn(state: &Arc<ApiState>) -> Controllers {
    let client = client::Loopback::new(Arc::clone(state), CONTROLLER_USER);
    Controllers {
        tasks: gc::spawn(Arc::clone(&state.store), client),
    }
}
