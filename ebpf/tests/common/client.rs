//! The client: the `bosun-test-client` process of `bosun-test-support`, placed in the
//! fixture's cgroup (so the socket LB sees its sockets) and then its netns.

use std::process::Child;

use bosun_test_support::client::{self as test_client, Placement};
pub use bosun_test_support::client::{Mode, Outcome, Plan};

use super::Fixture;

/// Starts the client process in the fixture's cgroup and netns.
pub fn spawn(fx: &Fixture, plan: Plan) -> Child {
    let netns = fx.netns.path();
    let placement = Placement {
        cgroup: Some(&fx.cgroup.path),
        netns: Some(&netns),
    };
    test_client::spawn(&test_client::binary(), &placement, &plan)
}

/// Collects a spawned client's outcomes.
pub fn collect(child: Child) -> Vec<Outcome> {
    test_client::collect(child)
}

/// Runs a client plan to completion.
pub fn run(fx: &Fixture, plan: Plan) -> Vec<Outcome> {
    let outcomes = collect(spawn(fx, plan));
    assert_eq!(
        outcomes.len(),
        plan.count as usize,
        "client reported too few results"
    );
    outcomes
}
