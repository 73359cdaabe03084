//! The cluster zone: every name cluster DNS answers, built whole from one snapshot of the
//! Services and EndpointSlices, as CoreDNS's kubernetes plugin names them
//! (<https://github.com/kubernetes/dns/blob/master/docs/specification.md>):
//! `<svc>.<ns>.svc.<domain>` (A of the ClusterIP; of every ready endpoint for a headless
//! Service; CNAME for an ExternalName), `<hostname>.<svc>.<ns>.svc.<domain>` and
//! `<a-b-c-d>.<svc>.<ns>.svc.<domain>` for a headless Service's endpoints,
//! `_<port>._<proto>.<svc>.<ns>.svc.<domain>` SRV for named ports, and PTR for ClusterIPs and
//! endpoint IPs. Pure: a lookup is a map read, and the server swaps in a new zone on change.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME, PTR, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::BinEncodable;

use super::wire::Prepared;

use crate::spec::{EndpointSlice, Protocol, Service, HEADLESS};

/// TTL of every answer (CoreDNS's kubernetes plugin default): endpoint changes reach clients
/// that cache within this.
pub const TTL: u32 = 5;

/// What the zone says about a (name, type).
#[derive(Debug, PartialEq)]
pub enum Answer<'a> {
    /// The name is not in the cluster domain nor a reverse name the zone holds: forward it.
    Outside,
    Records(&'a [Record]),
    /// The name exists, without records of that type.
    NoData,
    NxDomain,
}

/// What a local answer sends: response code, answer and authority sections (the server
/// sets AA on them all).
#[derive(Debug, PartialEq)]
pub struct Local<'a> {
    pub code: ResponseCode,
    pub answers: &'a [Record],
    pub authority: &'a [Record],
}

/// One cluster zone.
#[derive(Debug)]
pub struct Zone {
    /// `cluster.local.`, lowercase.
    domain: String,
    apex: Name,
    /// (lowercase FQDN, type) → records.
    records: HashMap<(String, RecordType), Vec<Record>>,
    /// Every name that exists, with its ancestors inside the domain (empty non-terminals).
    names: HashSet<String>,
    soa: Record,
    /// UDP answers encoded ahead, by question (`wire::Question` key): A and AAAA of every
    /// name, every type the zone holds, the apex's SOA.
    prepared: HashMap<Box<[u8]>, Prepared>,
    /// Names outside the domain the zone holds (reverse names), in wire form: a question
    /// about them is the zone's, never the forwarder's.
    outside_names: HashSet<Box<[u8]>>,
    /// Names inside the domain the zone holds, in wire form: any other name inside it is
    /// NXDOMAIN, answered from [`Zone::nxdomain`]'s bytes.
    inside_names: HashSet<Box<[u8]>>,
    /// The apex in wire form.
    apex_wire: Box<[u8]>,
    /// NXDOMAIN with the SOA, encoded for any question.
    nxdomain: Option<Prepared>,
}

/// `Name` of a lowercase FQDN; the zone only builds names from validated parts.
fn name(fqdn: &str) -> Option<Name> {
    Name::from_ascii(fqdn).ok()
}

/// `10-244-1-5`, the endpoint label CoreDNS gives an address without a hostname.
fn dashed(ip: Ipv4Addr) -> String {
    ip.to_string().replace('.', "-")
}

/// `5.1.244.10.in-addr.arpa.`
pub fn reverse_name(ip: Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("{d}.{c}.{b}.{a}.in-addr.arpa.")
}

/// Lowercase FQDN (with the final dot) of a query name.
pub fn normalize(query: &str) -> String {
    let mut s = query.to_ascii_lowercase();
    if !s.ends_with('.') {
        s.push('.');
    }
    s
}

impl Zone {
    /// The zone of `domain` (`cluster.local`) for these objects. Objects the agent could not
    /// read never reached the snapshot; names that are not valid DNS are left out.
    pub fn build(domain: &str, services: &[Service], slices: &[EndpointSlice]) -> Zone {
        let domain = normalize(domain.trim_end_matches('.'));
        let apex = name(&domain).unwrap_or_else(Name::root);
        let mname = name(&format!("ns.dns.{domain}")).unwrap_or_else(Name::root);
        let rname = name(&format!("hostmaster.{domain}")).unwrap_or_else(Name::root);
        let soa = SOA::new(mname, rname, 1, 7200, 1800, 86400, TTL);
        let soa = Record::from_rdata(apex.clone(), TTL, RData::SOA(soa));
        let mut zone = Zone {
            domain,
            apex,
            records: HashMap::new(),
            names: HashSet::new(),
            soa,
            prepared: HashMap::new(),
            outside_names: HashSet::new(),
            inside_names: HashSet::new(),
            apex_wire: Box::default(),
            nxdomain: None,
        };
        let mut by_service: BTreeMap<(&str, &str), Vec<&EndpointSlice>> = BTreeMap::new();
        for s in slices.iter().filter(|s| s.address_type == "IPv4") {
            if let Some(svc) = s.service_name() {
                by_service
                    .entry((s.metadata.namespace.as_str(), svc))
                    .or_default()
                    .push(s);
            }
        }
        let apex = zone.domain.clone();
        zone.names.insert(apex.clone());
        zone.names.insert(format!("svc.{apex}"));
        for svc in services {
            let (ns, svc_name) = (&svc.metadata.namespace, &svc.metadata.name);
            let key = (ns.as_str(), svc_name.as_str());
            let slices = by_service.get(&key).map(Vec::as_slice).unwrap_or_default();
            zone.add_service(svc, slices);
        }
        zone.prepare();
        zone
    }

    /// Encodes the answer of every (name, type) the zone is likely asked: A and AAAA of each
    /// name (records or NODATA), each type it holds, the apex's SOA.
    fn prepare(&mut self) {
        let mut questions: HashSet<(&str, RecordType)> = HashSet::new();
        for name in &self.names {
            questions.insert((name.as_str(), RecordType::A));
            questions.insert((name.as_str(), RecordType::AAAA));
        }
        for (name, rtype) in self.records.keys() {
            questions.insert((name.as_str(), *rtype));
        }
        questions.insert((self.domain.as_str(), RecordType::SOA));
        let mut prepared = HashMap::with_capacity(questions.len());
        for (fqdn, rtype) in questions {
            let Some(owner) = name(fqdn) else { continue };
            let Some(local) = self.local(self.lookup(fqdn, rtype)) else {
                continue;
            };
            let mut message = Message::new();
            message
                .set_message_type(MessageType::Response)
                .set_op_code(OpCode::Query)
                .set_authoritative(true)
                .set_recursion_available(true)
                .set_response_code(local.code)
                .add_query(Query::query(owner, rtype))
                .add_answers(local.answers.iter().cloned())
                .add_name_servers(local.authority.iter().cloned());
            match Prepared::new(&message) {
                Ok(p) => {
                    prepared.insert(p.key().into(), p);
                }
                Err(e) => tracing::debug!(%fqdn, %rtype, error = %e, "preparing a DNS answer"),
            }
        }
        let inside = format!(".{}", self.domain);
        let wire = |n: &String| name(n)?.to_bytes().ok().map(Vec::into_boxed_slice);
        let (inside_names, outside_names): (Vec<&String>, Vec<&String>) = self
            .names
            .iter()
            .chain(self.records.keys().map(|(n, _)| n))
            .partition(|n| n.ends_with(&inside) || **n == self.domain);
        self.outside_names = outside_names.into_iter().filter_map(wire).collect();
        self.inside_names = inside_names.into_iter().filter_map(wire).collect();
        self.apex_wire = self.apex.to_bytes().unwrap_or_default().into_boxed_slice();
        self.prepared = prepared;
        let mut nx = Message::new();
        nx.set_message_type(MessageType::Response)
            .set_op_code(OpCode::Query)
            .set_authoritative(true)
            .set_recursion_available(true)
            .set_response_code(ResponseCode::NXDomain)
            .add_query(Query::query(self.apex.clone(), RecordType::A))
            .add_name_server(self.soa.clone());
        self.nxdomain = Prepared::for_any_question(&nx)
            .inspect_err(|e| tracing::debug!(error = %e, "preparing NXDOMAIN"))
            .ok();
    }

    /// The prepared NXDOMAIN for a question (`wire::Question`'s key) about a name inside
    /// the domain that the zone does not hold — what [`Zone::lookup`] says of it, for any
    /// type.
    pub fn nxdomain(&self, key: &[u8]) -> Option<&Prepared> {
        let name = key.get(..key.len().checked_sub(4)?)?;
        if self.inside_names.contains(name) || !self.is_inside(name) {
            return None;
        }
        self.nxdomain.as_ref()
    }

    /// Whether a wire-form name (lowercase, uncompressed) is the apex or below it: the apex's
    /// bytes at one of its label boundaries.
    fn is_inside(&self, name: &[u8]) -> bool {
        let mut at = 0;
        while let Some(rest) = name.get(at..) {
            if rest.is_empty() {
                return false;
            }
            if *rest == *self.apex_wire {
                return true;
            }
            at += usize::from(rest[0]) + 1;
        }
        false
    }

    fn add(&mut self, fqdn: &str, rdata: RData) {
        let Some(owner) = name(fqdn) else { return };
        let rtype = rdata.record_type();
        let records = self.records.entry((fqdn.to_string(), rtype)).or_default();
        let record = Record::from_rdata(owner, TTL, rdata);
        if !records.contains(&record) {
            records.push(record);
        }
        self.exists(fqdn);
    }

    /// `fqdn` exists, and inside the domain its ancestors down to the apex (empty
    /// non-terminals answer NODATA, not NXDOMAIN).
    fn exists(&mut self, fqdn: &str) {
        let inside = fqdn.ends_with(&format!(".{}", self.domain));
        if !inside {
            self.names.insert(fqdn.to_string());
            return;
        }
        let mut n = fqdn;
        while n.len() > self.domain.len() && self.names.insert(n.to_string()) {
            n = n.split_once('.').map(|(_, rest)| rest).unwrap_or_default();
        }
    }

    fn add_service(&mut self, svc: &Service, slices: &[&EndpointSlice]) {
        let (ns, svc_name) = (&svc.metadata.namespace, &svc.metadata.name);
        let base = format!("{svc_name}.{ns}.svc.{}", self.domain);
        let Some(base_name) = name(&base) else { return };
        let spec = &svc.spec;
        if spec.type_.as_deref() == Some("ExternalName") {
            if let Some(target) = spec
                .external_name
                .as_deref()
                .and_then(|t| name(&normalize(t)))
            {
                self.add(&base, RData::CNAME(CNAME(target)));
            }
            return;
        }
        let headless = spec.cluster_ip.as_deref() == Some(HEADLESS);
        if !headless {
            let ips = spec.cluster_ip.iter().chain(&spec.cluster_ips);
            let ips: Vec<Ipv4Addr> = ips.filter_map(|ip| ip.parse().ok()).collect();
            if ips.is_empty() {
                return;
            }
            for ip in &ips {
                self.add(&base, RData::A(A(*ip)));
                self.add(&reverse_name(*ip), RData::PTR(PTR(base_name.clone())));
            }
            for port in &spec.ports {
                let Some(port_name) = port.name.as_deref().filter(|n| !n.is_empty()) else {
                    continue;
                };
                let srv = format!("_{port_name}._{}.{base}", proto(port.protocol));
                let target = base_name.clone();
                let rdata = SRV::new(0, 100, port.port as u16, target);
                self.add(&srv, RData::SRV(rdata));
            }
            return;
        }
        // Headless: the ready endpoints themselves; with publishNotReadyAddresses all of them.
        let publish_all = spec.publish_not_ready_addresses;
        for slice in slices {
            for e in slice
                .endpoints
                .iter()
                .filter(|e| publish_all || e.conditions.ready())
            {
                for ip in e
                    .addresses
                    .iter()
                    .filter_map(|a| a.parse::<Ipv4Addr>().ok())
                {
                    let label = e.hostname.clone().unwrap_or_else(|| dashed(ip));
                    let host = format!("{label}.{base}");
                    let Some(host_name) = name(&host) else {
                        continue;
                    };
                    self.add(&base, RData::A(A(ip)));
                    self.add(&host, RData::A(A(ip)));
                    self.add(&reverse_name(ip), RData::PTR(PTR(host_name.clone())));
                    for p in &slice.ports {
                        let (Some(port_name), Some(port)) = (p.name.as_deref(), p.port) else {
                            continue;
                        };
                        if port_name.is_empty() {
                            continue;
                        }
                        let srv = format!("_{port_name}._{}.{base}", proto(p.protocol));
                        let rdata = SRV::new(0, 100, port as u16, host_name.clone());
                        self.add(&srv, RData::SRV(rdata));
                    }
                }
            }
        }
        // A headless Service without ready endpoints still exists (NODATA, not NXDOMAIN).
        self.exists(&base);
    }

    /// The answer for `query` (any case, with or without the final dot).
    pub fn lookup(&self, query: &str, rtype: RecordType) -> Answer<'_> {
        let q = normalize(query);
        let inside = q == self.domain || q.ends_with(&format!(".{}", self.domain));
        if let Some(records) = self.records.get(&(q.clone(), rtype)) {
            return Answer::Records(records);
        }
        // A CNAME answers every type of its name.
        if let Some(records) = self.records.get(&(q.clone(), RecordType::CNAME)) {
            return Answer::Records(records);
        }
        if rtype == RecordType::SOA && q == self.domain {
            return Answer::Records(std::slice::from_ref(&self.soa));
        }
        match (inside, self.names.contains(&q)) {
            (_, true) => Answer::NoData,
            (true, false) => Answer::NxDomain,
            (false, false) => Answer::Outside,
        }
    }

    /// What a local answer sends; `None` for [`Answer::Outside`].
    pub fn local<'a>(&'a self, answer: Answer<'a>) -> Option<Local<'a>> {
        let soa = std::slice::from_ref(&self.soa);
        let (code, answers, authority) = match answer {
            Answer::Records(records) => (ResponseCode::NoError, records, &[][..]),
            Answer::NoData => (ResponseCode::NoError, &[][..], soa),
            Answer::NxDomain => (ResponseCode::NXDomain, &[][..], soa),
            Answer::Outside => return None,
        };
        Some(Local {
            code,
            answers,
            authority,
        })
    }

    /// The prepared UDP answer to a question (`wire::Question`'s key).
    pub fn prepared(&self, key: &[u8]) -> Option<&Prepared> {
        self.prepared.get(key)
    }

    /// Whether the forwarder's cache may answer a question (`wire::Question`'s key) the
    /// zone has no prepared answer for: not a name the zone holds outside its domain (a
    /// reverse name). Names inside the domain are never forwarded, so never cached.
    pub fn forwards(&self, key: &[u8]) -> bool {
        let name = key.get(..key.len().saturating_sub(4)).unwrap_or_default();
        !self.outside_names.contains(name)
    }

    /// The SOA for negative answers.
    pub fn soa(&self) -> &Record {
        &self.soa
    }

    /// The zone's apex (`cluster.local.`).
    pub fn apex(&self) -> &Name {
        &self.apex
    }
}

fn proto(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    }
}

#[cfg(test)]
#[path = "records_tests.rs"]
mod tests;
