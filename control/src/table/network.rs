//! Printers of the network kinds: services (TYPE, CLUSTER-IP, EXTERNAL-IP with `<none>` and
//! `<pending>`, PORT(S) like `80:30080/TCP`), endpoints, endpointslices, ingresses and ingress
//! classes.

use serde_json::Value;
use time::OffsetDateTime;

use super::cells::{
    age, arr, at, col, format_labels, int, list_with_more, name, s, wide, AGE, NAME,
};
use super::Printer;

pub static SERVICE: Printer = Printer {
    columns: &[
        NAME,
        col("Type", "string", "type determines how the Service is exposed. Defaults to ClusterIP."),
        col("Cluster-IP", "string", "clusterIP is the IP address of the service and is usually assigned randomly."),
        col("External-IP", "string", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
        col("Port(s)", "string", "The list of ports that are exposed by this service."),
        AGE,
        wide("Selector", "string", "Route service traffic to pods with label keys and values matching this selector."),
    ],
    cells: service,
};

/// The IPs (or hostnames) of a load balancer status, deduplicated.
fn load_balancer(status: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for ingress in arr(status, &["ingress"]) {
        let entry = match (s(ingress, &["ip"]), s(ingress, &["hostname"])) {
            ("", "") => continue,
            ("", host) => host,
            (ip, _) => ip,
        };
        if !out.iter().any(|e| e == entry) {
            out.push(entry.to_owned());
        }
    }
    out
}

fn service(o: &Value, now: OffsetDateTime) -> Vec<Value> {
    // The API defaults the type to ClusterIP; read a missing one as that.
    let kind = match s(o, &["spec", "type"]) {
        "" => "ClusterIP",
        t => t,
    };
    let cluster_ip = arr(o, &["spec", "clusterIPs"])
        .first()
        .and_then(Value::as_str)
        .unwrap_or_else(|| s(o, &["spec", "clusterIP"]));
    let external_ips: Vec<&str> = arr(o, &["spec", "externalIPs"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let external = match kind {
        "ClusterIP" | "NodePort" if external_ips.is_empty() => "<none>".to_owned(),
        "ClusterIP" | "NodePort" => external_ips.join(","),
        "LoadBalancer" => {
            let mut all = load_balancer(at(o, &["status", "loadBalancer"]));
            all.extend(external_ips.iter().map(|ip| (*ip).to_owned()));
            if all.is_empty() {
                "<pending>".to_owned()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => s(o, &["spec", "externalName"]).to_owned(),
        _ => "<unknown>".to_owned(),
    };
    let ports: Vec<String> = arr(o, &["spec", "ports"])
        .iter()
        .map(|p| {
            let protocol = match s(p, &["protocol"]) {
                "" => "TCP",
                proto => proto,
            };
            match int(p, &["nodePort"]) {
                0 => format!("{}/{protocol}", int(p, &["port"])),
                node => format!("{}:{node}/{protocol}", int(p, &["port"])),
            }
        })
        .collect();
    vec![
        name(o),
        Value::from(kind),
        Value::from(if cluster_ip.is_empty() {
            "<none>"
        } else {
            cluster_ip
        }),
        Value::from(external),
        Value::from(if ports.is_empty() {
            "<none>".to_owned()
        } else {
            ports.join(",")
        }),
        age(o, now),
        Value::from(format_labels(at(o, &["spec", "selector"]))),
    ]
}

pub static ENDPOINTS: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Endpoints",
            "string",
            "The set of all endpoints is the union of all subsets.",
        ),
        AGE,
    ],
    cells: |o, now| vec![name(o), Value::from(endpoints(o)), age(o, now)],
};

/// `formatEndpoints`: up to three `ip:port` (or bare IPs for subsets without ports).
fn endpoints(o: &Value) -> String {
    let subsets = arr(o, &["subsets"]);
    if subsets.is_empty() {
        return "<none>".to_owned();
    }
    let max: usize = 3;
    let mut list: Vec<String> = Vec::new();
    let mut count = 0;
    for subset in subsets {
        let addresses = arr(subset, &["addresses"]);
        let ports = arr(subset, &["ports"]);
        if ports.is_empty() {
            count += addresses.len();
            for a in addresses.iter().take(max.saturating_sub(list.len())) {
                list.push(s(a, &["ip"]).to_owned());
            }
            continue;
        }
        for port in ports {
            count += addresses.len();
            for a in addresses.iter().take(max.saturating_sub(list.len())) {
                let ip = s(a, &["ip"]);
                let p = int(port, &["port"]);
                list.push(if ip.contains(':') {
                    format!("[{ip}]:{p}")
                } else {
                    format!("{ip}:{p}")
                });
            }
        }
    }
    let text = list.join(",");
    if count > max {
        format!("{text} + {} more...", count - max)
    } else {
        text
    }
}

pub static ENDPOINT_SLICE: Printer = Printer {
    columns: &[
        NAME,
        col(
            "AddressType",
            "string",
            "addressType specifies the type of address carried by this EndpointSlice.",
        ),
        col(
            "Ports",
            "string",
            "ports specifies the list of network ports exposed by each endpoint in this slice.",
        ),
        col(
            "Endpoints",
            "string",
            "endpoints is a list of unique endpoints in this slice.",
        ),
        AGE,
    ],
    cells: |o, now| {
        let ports: Vec<String> = arr(o, &["ports"])
            .iter()
            .map(|p| match (at(p, &["port"]).as_i64(), s(p, &["name"])) {
                (Some(port), _) => port.to_string(),
                (None, "") if at(p, &["name"]).is_null() => "*".to_owned(),
                (None, name) => name.to_owned(),
            })
            .collect();
        let addresses: Vec<String> = arr(o, &["endpoints"])
            .iter()
            .flat_map(|e| arr(e, &["addresses"]))
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        let max = 3;
        let first = |l: &[String]| l[..l.len().min(max)].to_vec();
        vec![
            name(o),
            Value::from(s(o, &["addressType"])),
            Value::from(list_with_more(&first(&ports), ports.len(), max)),
            Value::from(list_with_more(&first(&addresses), addresses.len(), max)),
            age(o, now),
        ]
    },
};

pub static INGRESS: Printer = Printer {
    columns: &[
        NAME,
        col("Class", "string", "The name of the IngressClass resource that should be used for additional configuration"),
        col("Hosts", "string", "Hosts that incoming requests are matched against before the ingress rule"),
        col("Address", "string", "Address is a list containing ingress points for the load-balancer"),
        col("Ports", "string", "Ports of TLS configurations that open"),
        AGE,
    ],
    cells: |o, now| {
        let class = match s(o, &["spec", "ingressClassName"]) {
            "" if at(o, &["spec", "ingressClassName"]).is_null() => "<none>",
            class => class,
        };
        let rules = arr(o, &["spec", "rules"]);
        let max = 3;
        let mut hosts: Vec<&str> = Vec::new();
        let mut more = false;
        for rule in rules {
            if hosts.len() == max {
                more = true;
                break;
            }
            if !s(rule, &["host"]).is_empty() {
                hosts.push(s(rule, &["host"]));
            }
        }
        let hosts = match (hosts.is_empty(), more) {
            (true, _) => "*".to_owned(),
            (false, true) => format!("{} + {} more...", hosts.join(","), rules.len() - max),
            (false, false) => hosts.join(","),
        };
        let ports = if arr(o, &["spec", "tls"]).is_empty() {
            "80"
        } else {
            "80, 443"
        };
        vec![
            name(o),
            Value::from(class),
            Value::from(hosts),
            Value::from(load_balancer(at(o, &["status", "loadBalancer"])).join(",")),
            Value::from(ports),
            age(o, now),
        ]
    },
};

pub static INGRESS_CLASS: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Controller",
            "string",
            "Controller that is responsible for handling this class",
        ),
        col(
            "Parameters",
            "string",
            "A reference to a resource with additional parameters",
        ),
        AGE,
    ],
    cells: |o, now| {
        let params = at(o, &["spec", "parameters"]);
        let parameters = if params.is_object() {
            let group = match at(params, &["apiGroup"]).as_str() {
                Some(g) => format!(".{g}"),
                None => String::new(),
            };
            format!("{}{group}/{}", s(params, &["kind"]), s(params, &["name"]))
        } else {
            "<none>".to_owned()
        };
        vec![
            name(o),
            Value::from(s(o, &["spec", "controller"])),
            Value::from(parameters),
            age(o, now),
        ]
    },
};
