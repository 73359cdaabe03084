//! Kubernetes probe fields → [`ProbeSpec`]s: named ports resolved against the container's
//! ports, defaults applied. Pure.

use std::time::Duration;

use super::net::HttpRequest;
use super::scheduler::{ProbeAction, ProbeSpec};
use super::state::ProbeKind;
use crate::spec::{resolve_port, Container, Probe, ProbeHandler, SpecError, UriScheme};

fn secs(n: i32) -> Duration {
    Duration::from_secs(u64::try_from(n).unwrap_or(0))
}

fn port(n: Option<i32>, what: &str) -> Result<u16, String> {
    n.and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("{what}: port is not a number or a named container port"))
}

/// The probes of `container`, or an error naming the probe field.
pub fn container_probes(container: &Container) -> Result<Vec<ProbeSpec>, String> {
    let mut out = Vec::new();
    for (field, kind, probe) in [
        (
            "livenessProbe",
            ProbeKind::Liveness,
            &container.liveness_probe,
        ),
        (
            "readinessProbe",
            ProbeKind::Readiness,
            &container.readiness_probe,
        ),
        ("startupProbe", ProbeKind::Startup, &container.startup_probe),
    ] {
        if let Some(p) = probe {
            out.push(one(field, kind, p, container)?);
        }
    }
    Ok(out)
}

fn one(field: &str, kind: ProbeKind, p: &Probe, c: &Container) -> Result<ProbeSpec, String> {
    let action = match p.handler() {
        Some(ProbeHandler::Exec(e)) => ProbeAction::Exec(e.command.clone()),
        Some(ProbeHandler::HttpGet(h)) => {
            let at = |e: SpecError| e.at(&format!("{field}.httpGet")).to_string();
            ProbeAction::Http(HttpRequest {
                host: h.host.clone(),
                port: port(resolve_port(&h.port, c), &format!("{field}.httpGet"))?,
                target: h.request_target().map_err(at)?,
                headers: h.request_headers().map_err(at)?,
                https: h.scheme() == UriScheme::Https,
            })
        }
        Some(ProbeHandler::TcpSocket(t)) => ProbeAction::Tcp {
            host: t.host.clone(),
            port: port(resolve_port(&t.port, c), &format!("{field}.tcpSocket"))?,
        },
        Some(ProbeHandler::Grpc(g)) => ProbeAction::Grpc {
            port: port(Some(g.port), &format!("{field}.grpc"))?,
            service: g.service.clone().unwrap_or_default(),
        },
        None => return Err(format!("{field}: exactly one handler is required")),
    };
    Ok(ProbeSpec {
        kind,
        action,
        initial_delay: secs(p.initial_delay_seconds()),
        period: secs(p.period_seconds()),
        timeout: secs(p.timeout_seconds()),
        success_threshold: p.success_threshold() as u32,
        failure_threshold: p.failure_threshold() as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_ports_and_defaults() {
        let pod = crate::spec::parse_pod(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: x\n    ports: [{name: web, containerPort: 8080}]\n    readinessProbe: {httpGet: {port: web, path: /ready}, periodSeconds: 2}\n    livenessProbe: {tcpSocket: {port: 8080}}\n",
        )
        .expect("pod");
        let probes = container_probes(&pod.spec.containers[0]).expect("probes");
        assert_eq!(probes.len(), 2);
        let live = &probes[0];
        assert_eq!(live.kind, ProbeKind::Liveness);
        assert!(matches!(live.action, ProbeAction::Tcp { port: 8080, .. }));
        assert_eq!(live.period, Duration::from_secs(10));
        assert_eq!(live.failure_threshold, 3);
        let ready = &probes[1];
        match &ready.action {
            ProbeAction::Http(r) => {
                assert_eq!(r.port, 8080);
                assert_eq!(r.target, "/ready");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(ready.period, Duration::from_secs(2));
    }
}
