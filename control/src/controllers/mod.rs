//! The controllers behind the API, as kube-controller-manager runs them: each follows the
//! store through an `informer` cache and writes through [`client::Loopback`] — the same
//! validation and storage path as kubectl's requests, in process — from a `queue` of keys.
//! Today: the garbage collector (`gc`), the Deployment controller (`deployment`), the
//! ReplicaSet controller (`replicaset`), the scheduler (`scheduler`), the EndpointSlice and
//! Endpoints controllers (`endpoints`), the `kubernetes` Service (`kubernetes_service`) and the
//! node lifecycle controller (`node_lifecycle`), the pod garbage collector (`podgc`), the Job
//! controller (`job`), the CronJob controller (`cronjob`), the DaemonSet controller
//! (`daemonset`), the StatefulSet controller (`statefulset`), the HorizontalPodAutoscaler
//! controller (`hpa`), the PersistentVolume binder (`persistentvolume`), the `default`
//! ServiceAccount of every namespace (`service_accounts`), the `kube-root-ca.crt` ConfigMap of
//! every namespace (`root_ca`), the ClusterRole aggregation (`clusterrole_aggregation`) and
//! the bootstrap-token and CSR
//! cleaners (`cleaners`) — on the process that holds
//! the `kube-controller-manager` Lease (`leader`).

mod cleaners;
pub mod client;
mod clusterrole_aggregation;
mod crd;
mod cronjob;
mod daemonset;
mod deployment;
pub(crate) mod disruption;
mod endpoints;
mod events;
mod gc;
mod history;
mod hpa;
mod informer;
mod job;
mod kube_dns;
mod kubernetes_service;
mod leader;
mod node_lifecycle;
pub(crate) mod persistentvolume;
mod podgc;
mod pods;
mod queue;
mod replicaset;
mod resourcequota;
mod root_ca;
pub(crate) mod scheduler;
pub(crate) mod service_accounts;
mod statefulset;

use std::net::SocketAddr;
use std::sync::Arc;

use crate::api::ApiState;
use crate::kinds;
use informer::Informer;
pub use leader::ElectionConfig;
pub use node_lifecycle::LifecycleConfig;

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

fn job_resource() -> &'static kinds::Resource {
    resource_of("batch", "jobs")
}

fn resource_of(group: &str, plural: &str) -> &'static kinds::Resource {
    match kinds::find(group, "v1", plural) {
        Some(r) => r,
        None => unreachable!("the kinds table serves {group}/v1 {plural}"),
    }
}

fn resource_version_of(group: &str, version: &str, plural: &str) -> &'static kinds::Resource {
    match kinds::find(group, version, plural) {
        Some(r) => r,
        None => unreachable!("the kinds table serves {group}/{version} {plural}"),
    }
}

fn lease_resource() -> &'static kinds::Resource {
    match kinds::find("coordination.k8s.io", "v1", "leases") {
        Some(r) => r,
        None => unreachable!("the kinds table serves leases"),
    }
}

/// Runs every controller while this process is the elected leader (`leader`): several
/// control processes over one etcd all serve the API, one runs the controllers.
pub fn spawn_elected(
    state: &Arc<ApiState>,
    server: SocketAddr,
    lifecycle: LifecycleConfig,
    election: ElectionConfig,
) -> Controllers {
    let client = client::Loopback::new(Arc::clone(state), CONTROLLER_USER);
    let state = Arc::clone(state);
    let task = leader::run(client, leader::identity(), election, move || {
        spawn(&state, server, lifecycle)
    });
    Controllers { tasks: vec![task] }
}

/// Starts every controller; `server` is where clients reach this API server.
pub fn spawn(state: &Arc<ApiState>, server: SocketAddr, lifecycle: LifecycleConfig) -> Controllers {
    let client = client::Loopback::new(Arc::clone(state), CONTROLLER_USER);
    let hpa_config = hpa::Config {
        sync_period: lifecycle.hpa_sync_period,
        downscale_stabilization: lifecycle.hpa_downscale_stabilization,
    };
    let store = &state.store;
    let pods = Informer::spawn(Arc::clone(store), resource("", "pods"));
    let replicasets = Informer::spawn(Arc::clone(store), resource("apps", "replicasets"));
    let replication_controllers =
        Informer::spawn(Arc::clone(store), resource("", "replicationcontrollers"));
    let deployments = Informer::spawn(Arc::clone(store), resource("apps", "deployments"));
    let mut tasks = gc::spawn(Arc::clone(store), client.clone());
    tasks.extend(deployment::spawn(
        client.clone(),
        Arc::clone(&deployments),
        Arc::clone(&replicasets),
    ));
    let nodes = Informer::spawn(Arc::clone(store), resource("", "nodes"));
    let claims = Informer::spawn(Arc::clone(store), resource("", "persistentvolumeclaims"));
    let volumes = Informer::spawn(Arc::clone(store), resource("", "persistentvolumes"));
    let classes = Informer::spawn(
        Arc::clone(store),
        resource("storage.k8s.io", "storageclasses"),
    );
    let budgets = Informer::spawn(
        Arc::clone(store),
        resource_of("policy", "poddisruptionbudgets"),
    );
    tasks.extend(scheduler::spawn(
        client.clone(),
        Arc::clone(&nodes),
        Arc::clone(&pods),
        scheduler::VolumeCaches {
            claims: Arc::clone(&claims),
            volumes: Arc::clone(&volumes),
            classes: Arc::clone(&classes),
        },
        Arc::clone(&budgets),
    ));
    tasks.extend(daemonset::spawn(
        client.clone(),
        daemonset::Caches {
            daemonsets: Informer::spawn(Arc::clone(store), resource_of("apps", "daemonsets")),
            pods: Arc::clone(&pods),
            nodes: Arc::clone(&nodes),
        },
    ));
    tasks.extend(statefulset::spawn(
        client.clone(),
        statefulset::Caches {
            sets: Informer::spawn(Arc::clone(store), resource_of("apps", "statefulsets")),
            pods: Arc::clone(&pods),
            claims: Arc::clone(&claims),
        },
    ));
    tasks.extend(persistentvolume::spawn(
        client.clone(),
        persistentvolume::Caches {
            volumes,
            claims,
            classes,
            nodes: Arc::clone(&nodes),
            pods: Arc::clone(&pods),
        },
    ));
    tasks.push(cleaners::spawn(client.clone()));
    tasks.push(crd::spawn(
        client.clone(),
        Informer::spawn(
            Arc::clone(store),
            resource_of("apiextensions.k8s.io", "customresourcedefinitions"),
        ),
    ));
    let namespaces = Informer::spawn(Arc::clone(store), resource("", "namespaces"));
    tasks.push(service_accounts::spawn(
        client.clone(),
        service_accounts::Caches {
            namespaces: Arc::clone(&namespaces),
            accounts: Informer::spawn(Arc::clone(store), resource("", "serviceaccounts")),
        },
    ));
    tasks.push(resourcequota::spawn(
        client.clone(),
        resourcequota::Caches {
            quotas: Informer::spawn(Arc::clone(store), resource("", "resourcequotas")),
            pods: Arc::clone(&pods),
        },
    ));
    tasks.push(clusterrole_aggregation::spawn(
        client.clone(),
        Informer::spawn(
            Arc::clone(store),
            resource("rbac.authorization.k8s.io", "clusterroles"),
        ),
    ));
    if let Some(ca) = &state.ca {
        tasks.push(root_ca::spawn(
            client.clone(),
            root_ca::Caches {
                namespaces,
                config_maps: Informer::spawn_named(
                    Arc::clone(store),
                    resource("", "configmaps"),
                    crate::api::service_account_admission::ROOT_CA_CONFIG_MAP,
                ),
            },
            ca.cert_pem.clone(),
        ));
    }
    tasks.push(podgc::spawn(
        client.clone(),
        podgc::Caches {
            pods: Arc::clone(&pods),
            nodes: Arc::clone(&nodes),
        },
        lifecycle.orphan_quarantine,
    ));
    tasks.push(node_lifecycle::spawn(
        client.clone(),
        node_lifecycle::Caches {
            nodes,
            leases: Informer::spawn(Arc::clone(store), lease_resource()),
            pods: Arc::clone(&pods),
        },
        lifecycle,
    ));
    tasks.extend(endpoints::spawn(
        client.clone(),
        endpoints::Caches {
            services: Informer::spawn(Arc::clone(store), resource("", "services")),
            pods: Arc::clone(&pods),
            slices: Informer::spawn(
                Arc::clone(store),
                resource("discovery.k8s.io", "endpointslices"),
            ),
            endpoints: Informer::spawn(Arc::clone(store), resource("", "endpoints")),
        },
    ));
    let first = state.service_network.first().to_string();
    tasks.push(kubernetes_service::spawn(client.clone(), first, server));
    let dns = state.service_network.dns().to_string();
    tasks.push(kube_dns::spawn(client.clone(), dns));
    let jobs = Informer::spawn(Arc::clone(store), job_resource());
    let cronjobs = Informer::spawn(Arc::clone(store), resource_of("batch", "cronjobs"));
    tasks.extend(cronjob::spawn(client.clone(), cronjobs, Arc::clone(&jobs)));
    tasks.extend(job::spawn(client.clone(), jobs, Arc::clone(&pods)));
    tasks.push(hpa::spawn(
        client.clone(),
        Informer::spawn(
            Arc::clone(store),
            resource_version_of("autoscaling", "v2", "horizontalpodautoscalers"),
        ),
        Arc::clone(&pods),
        Arc::clone(&state.metrics),
        hpa_config,
    ));
    tasks.push(disruption::spawn(
        client.clone(),
        disruption::Caches {
            budgets,
            pods: Arc::clone(&pods),
            replicasets: Arc::clone(&replicasets),
            deployments: Arc::clone(&deployments),
            statefulsets: Informer::spawn(Arc::clone(store), resource_of("apps", "statefulsets")),
            replication_controllers: Arc::clone(&replication_controllers),
        },
    ));
    tasks.extend(replicaset::spawn(
        client.clone(),
        &replicaset::REPLICATION_CONTROLLER,
        replication_controllers,
        Arc::clone(&pods),
    ));
    tasks.extend(replicaset::spawn(
        client,
        &replicaset::REPLICA_SET,
        replicasets,
        pods,
    ));
    Controllers { tasks }
}
