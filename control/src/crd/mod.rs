//! CustomResourceDefinitions (apiextensions.k8s.io/v1): the CRD kind is in the kinds table
//! like any other; this module serves what a CRD defines. `definition` reads a CRD (the
//! versions it serves, kube's validation of it and the refusal of what bosun does not honour),
//! `registry` holds the custom resources being served (rebuilt by `follow` from the stored
//! CRDs in every process; `controllers::crd` establishes CRDs and cleans up deleted ones),
//! `custom` checks and shows custom objects (`schema`: kube's structural schema — pruning,
//! defaulting, validation; `jsonpath`: the printer columns' paths).

pub mod approval;
pub mod cel;
pub mod custom;
pub mod definition;
pub mod follow;
pub mod jsonpath;
pub mod registry;
pub mod schema;
