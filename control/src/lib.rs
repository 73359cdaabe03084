//! bosun-control: a Kubernetes API server that the real `kubectl` drives unchanged (DESIGN.md
//! §1, §8). Discovery and every path are generated from one table of kinds (`kinds`); TLS is
//! always on, with a CA of our own (`pki`) and an admin kubeconfig written at start. Objects
//! persist in `store`: etcd's model (revisions, compare-and-swap, watch, compaction) on an
//! embedded SQLite file or etcd; it knows nothing of Kubernetes. The `controllers` (today the
//! garbage collector) run in the same process and write through the API's own path.
//!
//! This crate never touches the node: no namespaces, cgroups or routes.

#![forbid(unsafe_code)]

pub mod api;
pub mod audit;
pub mod authn;
pub mod authz;
pub mod controllers;
pub mod crd;
pub mod csr;
pub mod discovery;
pub mod health;
pub mod http_util;
pub mod kinds;
pub mod kubeconfig;
pub mod kubelet;
pub mod limits;
pub mod metrics;
pub mod names;
pub mod openapi;
pub mod pki;
pub mod protobuf;
pub mod repoll;
pub mod router;
pub mod schedule;
pub mod server;
pub mod server_metrics;
pub mod status;
pub mod store;
pub mod table;
