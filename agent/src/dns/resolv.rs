//! resolv.conf: reading the node's (`--resolv-conf`: the pods' `Default` policy and the
//! cluster DNS server's upstreams) and writing a pod's, as kubelet does
//! (`pkg/kubelet/network/dns`): `ClusterFirst` → the cluster DNS address, searches
//! `<ns>.svc.<domain> svc.<domain> <domain>` then the node's, `options ndots:5`; hostNetwork
//! pods with `ClusterFirst` and `Default` → the node's file; `None` → only `dnsConfig`; and
//! `dnsConfig` merged on top (nameservers and searches appended without duplicates, options
//! replacing those of the same name). Pure.

use std::net::IpAddr;

use crate::spec::PodDnsConfig;

/// kubelet's limits: 3 nameservers (the resolver's MAXNS), 32 search domains.
pub const MAX_NAMESERVERS: usize = 3;
pub const MAX_SEARCHES: usize = 32;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvConf {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    /// `name` or `name:value`.
    pub options: Vec<String>,
}

/// What the node tells pods about cluster DNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDns {
    /// The cluster DNS address (`--cluster-dns`); None when the node runs no cluster DNS,
    /// where `ClusterFirst` falls back to the node's file (kubelet's rule).
    pub address: Option<IpAddr>,
    /// `--cluster-domain`.
    pub domain: String,
}

/// The node's resolv.conf: `nameserver`, `search` (last one wins, as in glibc), `domain`
/// (a one-entry search when no `search`), `options`.
pub fn parse(text: &str) -> ResolvConf {
    let mut out = ResolvConf::default();
    let mut domain = None;
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or_default();
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => out.nameservers.extend(words.next().map(str::to_string)),
            Some("search") => out.searches = words.map(str::to_string).collect(),
            Some("domain") => domain = words.next().map(str::to_string),
            Some("options") => out.options.extend(words.map(str::to_string)),
            _ => {}
        }
    }
    if out.searches.is_empty() {
        out.searches.extend(domain);
    }
    out
}

pub fn render(conf: &ResolvConf) -> String {
    let mut s = String::new();
    if !conf.searches.is_empty() {
        s.push_str(&format!("search {}\n", conf.searches.join(" ")));
    }
    for ns in &conf.nameservers {
        s.push_str(&format!("nameserver {ns}\n"));
    }
    if !conf.options.is_empty() {
        s.push_str(&format!("options {}\n", conf.options.join(" ")));
    }
    s
}

/// A pod's resolv.conf (its namespace, `dnsPolicy`, `dnsConfig`, `hostNetwork`).
pub fn for_pod(
    namespace: &str,
    policy: Option<&str>,
    config: Option<&PodDnsConfig>,
    host_network: bool,
    cluster: &ClusterDns,
    node: &ResolvConf,
) -> ResolvConf {
    let policy = policy.unwrap_or("ClusterFirst");
    let cluster_first = match policy {
        "ClusterFirstWithHostNet" => true,
        "ClusterFirst" => !host_network,
        _ => false,
    };
    let mut out = match (policy, cluster_first, cluster.address) {
        ("None", _, _) => ResolvConf::default(),
        (_, true, Some(address)) => {
            let d = cluster.domain.trim_end_matches('.');
            let mut searches = vec![format!("{namespace}.svc.{d}"), format!("svc.{d}"), d.into()];
            searches.extend(node.searches.iter().cloned());
            ResolvConf {
                nameservers: vec![address.to_string()],
                searches,
                options: vec!["ndots:5".into()],
            }
        }
        _ => node.clone(),
    };
    if let Some(config) = config {
        out.nameservers.extend(config.nameservers.iter().cloned());
        out.searches.extend(config.searches.iter().cloned());
        for o in &config.options {
            let text = match &o.value {
                Some(v) => format!("{}:{v}", o.name),
                None => o.name.clone(),
            };
            let same = |e: &String| e.split(':').next() == Some(o.name.as_str());
            match out.options.iter().position(same) {
                Some(i) => out.options[i] = text,
                None => out.options.push(text),
            }
        }
    }
    dedup(&mut out.nameservers);
    dedup(&mut out.searches);
    out.nameservers.truncate(MAX_NAMESERVERS);
    out.searches.truncate(MAX_SEARCHES);
    out
}

fn dedup(v: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    v.retain(|s| seen.insert(s.clone()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::PodDnsOption;

    fn cluster() -> ClusterDns {
        ClusterDns {
            address: Some("10.96.0.10".parse().unwrap()),
            domain: "cluster.local".into(),
        }
    }

    fn node() -> ResolvConf {
        parse("# node\nnameserver 192.0.2.53\nnameserver 192.0.2.54\nsearch corp.example lab.example\noptions edns0 timeout:2\n")
    }

    #[test]
    fn cluster_first_points_at_cluster_dns_with_kubes_searches_and_ndots() {
        let conf = for_pod("shop", None, None, false, &cluster(), &node());
        assert_eq!(
            render(&conf),
            "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example\nnameserver 10.96.0.10\noptions ndots:5\n"
        );
    }

    #[test]
    fn default_and_host_network_cluster_first_get_the_nodes_file() {
        let n = node();
        assert_eq!(
            for_pod("a", Some("Default"), None, false, &cluster(), &n),
            n
        );
        assert_eq!(
            for_pod("a", Some("ClusterFirst"), None, true, &cluster(), &n),
            n
        );
        let with_host_net = for_pod(
            "a",
            Some("ClusterFirstWithHostNet"),
            None,
            true,
            &cluster(),
            &n,
        );
        assert_eq!(with_host_net.nameservers, ["10.96.0.10"]);
    }

    #[test]
    fn without_cluster_dns_cluster_first_falls_back_to_the_node() {
        let none = ClusterDns {
            address: None,
            domain: "cluster.local".into(),
        };
        assert_eq!(for_pod("a", None, None, false, &none, &node()), node());
    }

    #[test]
    fn none_takes_dns_config_and_config_merges_like_kubelet() {
        let config = PodDnsConfig {
            nameservers: vec!["1.2.3.4".into(), "10.96.0.10".into()],
            searches: vec!["my.example".into()],
            options: vec![
                PodDnsOption {
                    name: "ndots".into(),
                    value: Some("2".into()),
                },
                PodDnsOption {
                    name: "single-request".into(),
                    value: None,
                },
            ],
        };
        let none = for_pod("a", Some("None"), Some(&config), false, &cluster(), &node());
        assert_eq!(
            render(&none),
            "search my.example\nnameserver 1.2.3.4\nnameserver 10.96.0.10\noptions ndots:2 single-request\n"
        );
        let merged = for_pod("a", None, Some(&config), false, &cluster(), &node());
        assert_eq!(merged.nameservers, ["10.96.0.10", "1.2.3.4"]);
        assert_eq!(
            merged.searches.last().map(String::as_str),
            Some("my.example")
        );
        assert_eq!(merged.options, ["ndots:2", "single-request"]);
    }

    #[test]
    fn parse_reads_domain_when_there_is_no_search() {
        let conf = parse("domain example.net\nnameserver 127.0.0.1 ; comment\n");
        assert_eq!(conf.searches, ["example.net"]);
        assert_eq!(conf.nameservers, ["127.0.0.1"]);
    }
}
