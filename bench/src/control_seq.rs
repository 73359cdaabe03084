//! The control benchmark's sequential phase, interleaved: with all three servers running,
//! single-object creates, then gets, in [`Plan::rounds`] rounds; in each round every server
//! takes its turn at that round's share of the objects, the order of the turns rotating by
//! one from round to round. Each server's samples are pooled across the rounds into its
//! p50/p99 rows. Measured one server after the other, the floor and the API over etcd met
//! different moments of a shared machine whose load drifts (the floor's p99 swung 1.5–5.7 ms
//! between runs), and their ratio measured the drift; interleaved, each server sees the same
//! drift.

use std::ops::Range;

use anyhow::{Context, Result};

use super::control::{latency_rows, object_name, Plan};
use super::control_procs::Control;
use super::{control_api, control_etcd, Row};

/// One round of the interleaved phase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Round {
    /// The objects each server creates (then reads) in this round.
    pub objects: Range<usize>,
    /// The servers' turns, as indices of the servers.
    pub order: Vec<usize>,
}

/// Objects `0..latency` split into `rounds` consecutive runs as even as can be (the first
/// runs take the remainder), the turns of `servers` rotating by one from round to round, so
/// each server goes first, in the middle and last alike.
pub fn rounds(latency: usize, rounds: usize, servers: usize) -> Vec<Round> {
    let rounds = rounds.clamp(1, latency.max(1));
    let (base, extra) = (latency / rounds, latency % rounds);
    let mut start = 0;
    (0..rounds)
        .map(|round| {
            let len = base + usize::from(round < extra);
            let objects = start..start + len;
            start += len;
            let order = (0..servers).map(|turn| (round + turn) % servers).collect();
            Round { objects, order }
        })
        .collect()
}

/// One server's sequential client.
pub enum Sequential<'a> {
    Etcd(&'a mut control_etcd::Sequential),
    Api(&'a mut control_api::Sequential, &'a Control),
}

#[derive(Clone, Copy)]
enum Op {
    Create,
    Get,
}

impl Sequential<'_> {
    /// Creates or gets object `i`: its latency in ms.
    async fn time(&mut self, op: Op, i: usize) -> Result<f64> {
        match (self, op) {
            (Self::Etcd(client), Op::Create) => client.create(i).await,
            (Self::Etcd(client), Op::Get) => client.get(i).await,
            (Self::Api(client, _), Op::Create) => client.create(i).await,
            (Self::Api(client, _), Op::Get) => client.get(i).await,
        }
    }

    /// The server's log, for an error.
    fn log(&self) -> String {
        match self {
            Self::Etcd(_) => String::new(),
            Self::Api(_, control) => format!("; log:\n{}", control.process.log_tail()),
        }
    }

    fn check(&self) -> Result<()> {
        match self {
            Self::Etcd(_) => Ok(()),
            Self::Api(_, control) => control.process.check(),
        }
    }
}

/// The interleaved sequential creates, then gets, of objects `0..plan.latency` on each of
/// `servers` (named): rows create and get p50_ms/p99_ms of each.
pub async fn measure(
    servers: &mut [(&str, Sequential<'_>)],
    plan: &Plan,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let rounds = rounds(plan.latency, plan.rounds, servers.len());
    for (case, op) in [("create", Op::Create), ("get", Op::Get)] {
        let mut samples = vec![Vec::with_capacity(plan.latency); servers.len()];
        for round in &rounds {
            for &turn in &round.order {
                let (name, server) = &mut servers[turn];
                for i in round.objects.clone() {
                    let latency = server.time(op, i).await;
                    let latency = latency.with_context(|| {
                        format!("{name}: {case} of {}{}", object_name(i), server.log())
                    })?;
                    samples[turn].push(latency);
                }
            }
        }
        for ((name, server), samples) in servers.iter().zip(samples) {
            server
                .check()
                .with_context(|| format!("{name}{}", server.log()))?;
            latency_rows(rows, case, name, samples);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_cover_the_objects_once_with_rotating_turns() {
        let plan = rounds(2000, 10, 3);
        assert_eq!(plan.len(), 10);
        assert!(plan.iter().all(|r| r.objects.len() == 200));
        assert_eq!(plan[0].objects, 0..200);
        assert_eq!(plan[9].objects, 1800..2000);
        assert!(plan
            .windows(2)
            .all(|w| w[0].objects.end == w[1].objects.start));
        assert_eq!(plan[0].order, [0, 1, 2]);
        assert_eq!(plan[1].order, [1, 2, 0]);
        assert_eq!(plan[2].order, [2, 0, 1]);
        assert_eq!(plan[3].order, [0, 1, 2]);
        // Each server takes each place (first, middle, last) 3 or 4 times of 10.
        for server in 0..3 {
            for place in 0..3 {
                let times = plan.iter().filter(|r| r.order[place] == server).count();
                assert!(
                    (3..=4).contains(&times),
                    "server {server} place {place}: {times}"
                );
            }
        }
    }

    #[test]
    fn uneven_rounds_give_the_remainder_to_the_first_and_lose_nothing() {
        let sizes: Vec<usize> = rounds(10, 4, 3).iter().map(|r| r.objects.len()).collect();
        assert_eq!(sizes, [3, 3, 2, 2]);
        // More rounds than objects: one object a round.
        let plan = rounds(3, 10, 2);
        assert_eq!(plan.len(), 3);
        assert_eq!(
            plan[2],
            Round {
                objects: 2..3,
                order: vec![0, 1]
            }
        );
        // No objects: one empty round.
        assert_eq!(rounds(0, 10, 3)[0].objects, 0..0);
    }
}
