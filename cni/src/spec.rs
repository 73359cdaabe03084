//! The CNI protocol as this plugin sees it: the environment (`CNI_*`), the network
//! configuration on stdin, the result object, and the spec's error object with its codes.
//! Pure data and validation; nothing here touches the kernel or the filesystem.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The versions this plugin speaks, oldest first.
pub const SUPPORTED_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
/// The newest supported version, used when the config could not be read.
pub const LATEST_VERSION: &str = "1.1.0";

/// Spec error codes (CNI spec, "Error" section).
pub mod code {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const UNSUPPORTED_FIELD: u32 = 2;
    pub const CONTAINER_UNKNOWN: u32 = 3;
    pub const INVALID_ENV: u32 = 4;
    pub const IO_FAILURE: u32 = 5;
    pub const DECODE_FAILURE: u32 = 6;
    pub const INVALID_CONFIG: u32 = 7;
    pub const TRY_AGAIN: u32 = 11;
    pub const NOT_AVAILABLE: u32 = 50;
    /// Plugin-specific (≥ 100): CHECK found the attachment not as ADD left it.
    pub const CHECK_FAILED: u32 = 100;
}

/// A CNI error object: `{cniVersion, code, msg, details}` on stdout, non-zero exit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("CNI error {code}: {msg}: {details}")]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>, details: impl Into<String>) -> Self {
        CniError {
            code,
            msg: msg.into(),
            details: details.into(),
        }
    }

    /// The JSON error object for `cni_version`.
    pub fn to_json(&self, cni_version: &str) -> Value {
        json!({
            "cniVersion": cni_version,
            "code": self.code,
            "msg": self.msg,
            "details": self.details,
        })
    }
}

/// The CNI verb from `CNI_COMMAND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
    Gc,
    Status,
}

impl Command {
    pub fn parse(s: &str) -> Result<Self, CniError> {
        Ok(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "VERSION" => Command::Version,
            "GC" => Command::Gc,
            "STATUS" => Command::Status,
            other => {
                return Err(CniError::new(
                    code::INVALID_ENV,
                    "unknown CNI_COMMAND",
                    format!("CNI_COMMAND={other:?}"),
                ))
            }
        })
    }
}

/// The `CNI_*` environment of one invocation (attachment fields only for ADD/DEL/CHECK).
#[derive(Debug, Clone)]
pub struct Env {
    pub command: Command,
    pub container_id: String,
    pub netns: Option<PathBuf>,
    pub ifname: String,
}

impl Env {
    /// Reads and validates the environment from `vars` (e.g. `std::env::vars()`).
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, CniError> {
        let get = |k: &str| vars.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let missing = |k: &str| CniError::new(code::INVALID_ENV, "required variable unset", k);
        let command = Command::parse(get("CNI_COMMAND").ok_or_else(|| missing("CNI_COMMAND"))?)?;
        let needs_attachment = matches!(command, Command::Add | Command::Del | Command::Check);
        let container_id = get("CNI_CONTAINERID").unwrap_or_default().to_owned();
        let ifname = get("CNI_IFNAME").unwrap_or_default().to_owned();
        let netns = get("CNI_NETNS").map(PathBuf::from);
        if needs_attachment {
            validate_container_id(&container_id)?;
            validate_ifname(&ifname)?;
            if netns.is_none() && command != Command::Del {
                return Err(missing("CNI_NETNS"));
            }
        }
        Ok(Env {
            command,
            container_id,
            netns,
            ifname,
        })
    }
}

/// Container ids are `[a-zA-Z0-9][a-zA-Z0-9_.-]*` (spec).
pub fn validate_container_id(id: &str) -> Result<(), CniError> {
    let mut chars = id.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(CniError::new(
            code::INVALID_ENV,
            "invalid CNI_CONTAINERID",
            format!("{id:?} must match [a-zA-Z0-9][a-zA-Z0-9_.-]*"),
        ))
    }
}

/// Interface names: 1..=15 bytes, not `.`/`..`, no `/`, `:` or whitespace.
pub fn validate_ifname(name: &str) -> Result<(), CniError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace());
    if ok {
        Ok(())
    } else {
        Err(CniError::new(
            code::INVALID_ENV,
            "invalid CNI_IFNAME",
            format!("{name:?}"),
        ))
    }
}

/// The network configuration bosun-cni reads from stdin.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    pub cni_version: String,
    pub name: String,
    #[serde(rename = "type")]
    pub plugin_type: String,
    /// MTU of both veth ends; 1500 when unset.
    #[serde(default)]
    pub mtu: Option<u32>,
    /// Turn on `net.ipv4.ip_forward` in the node netns (default true: routed mode needs it).
    #[serde(default)]
    pub ip_forward: Option<bool>,
    pub ipam: IpamConf,
    #[serde(default)]
    pub prev_result: Option<Value>,
    #[serde(default, rename = "cni.dev/valid-attachments")]
    pub valid_attachments: Option<Vec<Attachment>>,
}

/// The built-in IPAM: one IPv4 range, normally the node's pod CIDR.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpamConf {
    /// Must be absent or "bosun": external IPAM plugins are not delegated to.
    #[serde(default, rename = "type")]
    pub ipam_type: Option<String>,
    pub subnet: Ipv4Net,
    #[serde(default)]
    pub range_start: Option<Ipv4Addr>,
    #[serde(default)]
    pub range_end: Option<Ipv4Addr>,
    /// Where allocations live; default `/var/lib/bosun/cni/ipam`, one folder per network.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
}

/// One entry of `cni.dev/valid-attachments` (GC).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

/// Parses and checks the stdin config: JSON errors are code 6, bad fields 7, versions 1.
pub fn parse_conf(stdin: &[u8]) -> Result<NetConf, CniError> {
    let conf: NetConf = serde_json::from_slice(stdin).map_err(|e| {
        let code = if e.is_data() {
            code::INVALID_CONFIG
        } else {
            code::DECODE_FAILURE
        };
        CniError::new(code, "invalid network configuration", e.to_string())
    })?;
    if !SUPPORTED_VERSIONS.contains(&conf.cni_version.as_str()) {
        return Err(CniError::new(
            code::INCOMPATIBLE_VERSION,
            "unsupported cniVersion",
            format!(
                "{} (supported: {})",
                conf.cni_version,
                SUPPORTED_VERSIONS.join(", ")
            ),
        ));
    }
    if let Some(t) = conf.ipam.ipam_type.as_deref().filter(|t| *t != "bosun") {
        return Err(CniError::new(
            code::UNSUPPORTED_FIELD,
            "ipam.type: only the built-in IPAM (\"bosun\" or absent) is supported",
            t.to_owned(),
        ));
    }
    if conf.mtu.is_some_and(|m| !(68..=65535).contains(&m)) {
        return Err(CniError::new(
            code::INVALID_CONFIG,
            "mtu out of range 68..=65535",
            format!("{:?}", conf.mtu),
        ));
    }
    Ok(conf)
}

/// Whether `version` is at least `min` (both dotted triples; unknown parts count as 0).
pub fn version_at_least(version: &str, min: &str) -> bool {
    let parse = |v: &str| -> Vec<u32> { v.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    parse(version) >= parse(min)
}

/// What ADD produced, rendered as the spec's result for `cni_version`.
#[derive(Debug, Clone)]
pub struct AddResult {
    pub host_if: (String, String),
    pub pod_if: (String, String, String),
    pub ip: Ipv4Addr,
    pub gateway: Ipv4Addr,
}

impl AddResult {
    pub fn to_json(&self, cni_version: &str) -> Value {
        let mut ip = json!({
            "address": format!("{}/32", self.ip),
            "gateway": self.gateway.to_string(),
            "interface": 1,
        });
        if !version_at_least(cni_version, "1.0.0") {
            ip["version"] = json!("4");
        }
        json!({
            "cniVersion": cni_version,
            "interfaces": [
                {"name": self.host_if.0, "mac": self.host_if.1},
                {"name": self.pod_if.0, "mac": self.pod_if.1, "sandbox": self.pod_if.2},
            ],
            "ips": [ip],
            "routes": [{"dst": "0.0.0.0/0", "gw": self.gateway.to_string()}],
            "dns": {},
        })
    }
}

/// The first IPv4 address in a previous result's `ips` (CHECK), if any.
pub fn prev_result_ipv4(prev: &Value) -> Option<Ipv4Addr> {
    prev.get("ips")?.as_array()?.iter().find_map(|ip| {
        let addr = ip.get("address")?.as_str()?;
        addr.parse::<Ipv4Net>().ok().map(|n| n.addr())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_json_is_decode_error() {
        assert_eq!(parse_conf(b"{nope").unwrap_err().code, code::DECODE_FAILURE);
    }

    #[test]
    fn missing_subnet_is_config_error() {
        let err = parse_conf(br#"{"cniVersion":"1.0.0","name":"n","type":"bosun-cni","ipam":{}}"#)
            .unwrap_err();
        assert_eq!(err.code, code::INVALID_CONFIG);
    }

    #[test]
    fn unknown_version_is_incompatible() {
        let err = parse_conf(
            br#"{"cniVersion":"9.0.0","name":"n","type":"t","ipam":{"subnet":"10.1.0.0/24"}}"#,
        )
        .unwrap_err();
        assert_eq!(err.code, code::INCOMPATIBLE_VERSION);
    }

    #[test]
    fn container_id_and_ifname_rules() {
        assert!(validate_container_id("abc-1.2_3").is_ok());
        assert!(validate_container_id("-abc").is_err());
        assert!(validate_container_id("a/b").is_err());
        assert!(validate_ifname("eth0").is_ok());
        assert!(validate_ifname("..").is_err());
        assert!(validate_ifname("a-very-long-name0").is_err());
    }

    #[test]
    fn old_results_carry_ip_version() {
        let r = AddResult {
            host_if: ("bsn1".into(), "aa".into()),
            pod_if: ("eth0".into(), "bb".into(), "/ns".into()),
            ip: Ipv4Addr::new(10, 0, 0, 2),
            gateway: Ipv4Addr::new(169, 254, 1, 1),
        };
        assert_eq!(r.to_json("0.4.0")["ips"][0]["version"], "4");
        assert!(r.to_json("1.0.0")["ips"][0].get("version").is_none());
        assert_eq!(prev_result_ipv4(&r.to_json("1.0.0")), Some(r.ip));
    }
}
