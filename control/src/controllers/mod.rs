//! The controllers behind the API, as kube-controller-manager runs them: each follows the
//! store through an `informer` cache and writes through [`client::Loopback`] — the same
//! validation and storage path as kubectl's requests, in process — from a `queue` of keys.
//! Today: the garbage collector (`gc`), the Deployment controller (`deployment`), the
//! ReplicaSet controller (`replicaset`) and the scheduler (`scheduler`).

pub mod client;
mod deployment;
mod events;
mod gc;
mod informer;
mod pods;
mod queue;
mod replicaset;
mod scheduler;

use std::sync::Arc;

use crate::api::ApiState;
use crate::kinds;
use informer::Informer;

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

fn resource(group: &str, plural: &str) -> &'static kinds::Resource {
    match kinds::find(group, "v1", plural) {
        Some(r) => r,
        None => unreachable!("the kinds table serves {group}/v1 {plural}"),
    }
}

/// Starts every controller.
pub fn spawn(state: &Arc<ApiState>) -> Controllers {
    let client = client::Loopback::new(Arc::clone(state), CONTROLLER_USER);
    let store = &state.store;
    let pods = Informer::spawn(Arc::clone(store), resource("", "pods"));
    let replicasets = Informer::spawn(Arc::clone(store), resource("apps", "replicasets"));
    let deployments = Informer::spawn(Arc::clone(store), resource("apps", "deployments"));
    let mut tasks = gc::spawn(Arc::clone(store), client.clone());
    tasks.extend(deployment::spawn(
        client.clone(),
        deployments,
        Arc::clone(&replicasets),
    ));
    let nodes = Informer::spawn(Arc::clone(store), resource("", "nodes"));
    tasks.extend(scheduler::spawn(client.clone(), nodes, Arc::clone(&pods)));
    tasks.extend(replicaset::spawn(client, replicasets, pods));
    Controllers { tasks }
}
