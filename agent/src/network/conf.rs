//! CNI network configuration: the first `*.conflist` / `*.conf` / `*.json` of the config
//! directory in lexical order (as kubelet does), a `.conf` being wrapped into a one-plugin
//! list; the default bosun conflist when the directory has none (written there, or only kept
//! in memory for a one-off `run`); and the per-plugin stdin
//! config with `name`, `cniVersion`, `prevResult` and `runtimeConfig` injected. Pure data
//! apart from reading and writing the directory.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::NetworkError;

/// File name of the conflist written when the directory holds none.
pub const DEFAULT_CONFLIST: &str = "10-bosun.conflist";

/// A hostPort mapping, passed as `runtimeConfig.portMappings` to plugins that ask for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: String,
    #[serde(default, rename = "hostIP", skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
}

/// A loaded network configuration list.
#[derive(Debug, Clone)]
pub struct NetworkList {
    pub path: PathBuf,
    pub name: String,
    pub cni_version: String,
    pub plugins: Vec<Map<String, Value>>,
}

impl NetworkList {
    /// The list as JSON (cached with each result so DEL uses the config ADD used).
    pub fn to_json(&self) -> Value {
        json!({"cniVersion": self.cni_version, "name": self.name, "plugins": self.plugins})
    }

    /// The plugin's `type`.
    pub fn plugin_type(plugin: &Map<String, Value>) -> &str {
        plugin
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// Stdin for `plugin`: its own fields plus name, cniVersion, prevResult and the
    /// runtimeConfig entries for the capabilities it declares.
    pub fn plugin_stdin(
        &self,
        plugin: &Map<String, Value>,
        prev_result: Option<&Value>,
        port_mappings: &[PortMapping],
    ) -> Vec<u8> {
        let mut conf = plugin.clone();
        conf.insert("name".into(), json!(self.name));
        conf.insert("cniVersion".into(), json!(self.cni_version));
        conf.remove("capabilities");
        if let Some(prev) = prev_result {
            conf.insert("prevResult".into(), prev.clone());
        }
        let wants_ports = plugin
            .get("capabilities")
            .and_then(|c| c.get("portMappings"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if wants_ports && !port_mappings.is_empty() {
            conf.insert(
                "runtimeConfig".into(),
                json!({"portMappings": port_mappings}),
            );
        }
        serde_json::to_vec(&Value::Object(conf)).unwrap_or_default()
    }
}

/// Parses a `.conflist` (or, if `single`, a `.conf` wrapped into a list).
pub fn parse(path: &Path, bytes: &[u8]) -> Result<NetworkList, NetworkError> {
    let bad = |message: String| NetworkError::Config {
        path: path.to_owned(),
        message,
    };
    let value: Value = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    let obj = value
        .as_object()
        .ok_or_else(|| bad("not a JSON object".into()))?;
    let field = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_owned);
    let name = field("name").ok_or_else(|| bad("missing string field \"name\"".into()))?;
    let cni_version =
        field("cniVersion").ok_or_else(|| bad("missing string field \"cniVersion\"".into()))?;
    let plugins: Vec<Map<String, Value>> = match obj.get("plugins") {
        Some(list) => list
            .as_array()
            .ok_or_else(|| bad("\"plugins\" is not a list".into()))?
            .iter()
            .enumerate()
            .map(|(i, p)| {
                p.as_object()
                    .cloned()
                    .ok_or_else(|| bad(format!("plugins[{i}] is not an object")))
            })
            .collect::<Result<_, _>>()?,
        None if obj.contains_key("type") => vec![obj.clone()],
        None => return Err(bad("neither \"plugins\" nor \"type\"".into())),
    };
    if plugins.is_empty() {
        return Err(bad("\"plugins\" is empty".into()));
    }
    for (i, p) in plugins.iter().enumerate() {
        if NetworkList::plugin_type(p).is_empty() {
            return Err(bad(format!("plugins[{i}].type missing")));
        }
    }
    Ok(NetworkList {
        path: path.to_owned(),
        name,
        cni_version,
        plugins,
    })
}

/// The config files of `dir`, lexical order.
fn config_files(dir: &Path) -> Result<Vec<PathBuf>, NetworkError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(NetworkError::io("listing", dir, e)),
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("conflist" | "conf" | "json")
            )
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Where a loaded list came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListOrigin {
    /// The first config file of the directory.
    Found,
    /// The default, written to the directory because it held none.
    Written,
    /// The default, kept in memory (the directory held none and writing was not wanted).
    Default,
}

/// The first config of `dir`; when there is none, the `default` list: written to `dir` as
/// [`DEFAULT_CONFLIST`] when `write` (`dir` is created), else only kept in memory.
pub fn load_dir(
    dir: &Path,
    default: &Value,
    write: bool,
) -> Result<(NetworkList, ListOrigin), NetworkError> {
    if let Some(first) = config_files(dir)?.into_iter().next() {
        let bytes = std::fs::read(&first).map_err(|e| NetworkError::io("reading", &first, e))?;
        return Ok((parse(&first, &bytes)?, ListOrigin::Found));
    }
    let path = dir.join(DEFAULT_CONFLIST);
    let bytes = serde_json::to_vec_pretty(default).unwrap_or_default();
    if !write {
        return Ok((parse(&path, &bytes)?, ListOrigin::Default));
    }
    std::fs::create_dir_all(dir).map_err(|e| NetworkError::io("creating", dir, e))?;
    let tmp = dir.join(format!(".{DEFAULT_CONFLIST}.tmp"));
    std::fs::write(&tmp, &bytes).map_err(|e| NetworkError::io("writing", &tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| NetworkError::io("renaming", &path, e))?;
    Ok((parse(&path, &bytes)?, ListOrigin::Written))
}

/// The default: bosun-cni in routed mode over the node's pod CIDR; `ip_forward`: whether the
/// plugin turns on net.ipv4.ip_forward in the node netns (pod-to-pod and off-node traffic
/// need it; a one-off `run` leaves it as it is).
pub fn default_conflist(pod_cidr: &str, ipam_dir: &Path, ip_forward: bool) -> Value {
    json!({
        "cniVersion": "1.1.0",
        "name": "bosun",
        "plugins": [{
            "type": "bosun-cni",
            "mtu": 1500,
            "ipForward": ip_forward,
            "ipam": {"type": "bosun", "subnet": pod_cidr, "dataDir": ipam_dir},
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_written_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("conf");
        let default = default_conflist("10.244.0.0/24", Path::new("/x/ipam"), false);
        let (list, origin) = load_dir(&conf, &default, false).unwrap();
        assert_eq!(origin, ListOrigin::Default);
        assert_eq!(list.plugins[0]["ipForward"], false);
        assert!(!conf.exists(), "nothing written");
        let (_, origin) = load_dir(&conf, &default, true).unwrap();
        assert_eq!(origin, ListOrigin::Written);
        assert!(conf.join(DEFAULT_CONFLIST).is_file());
        let (_, origin) = load_dir(&conf, &default, false).unwrap();
        assert_eq!(origin, ListOrigin::Found);
    }

    #[test]
    fn single_conf_is_wrapped() {
        let l = parse(
            Path::new("x.conf"),
            br#"{"cniVersion":"0.4.0","name":"n","type":"bridge"}"#,
        )
        .unwrap();
        assert_eq!(l.plugins.len(), 1);
        assert_eq!(NetworkList::plugin_type(&l.plugins[0]), "bridge");
    }

    #[test]
    fn malformed_lists_name_the_problem() {
        let err = parse(
            Path::new("a"),
            br#"{"cniVersion":"1.0.0","name":"n","plugins":[{}]}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("plugins[0].type"), "{err}");
        assert!(parse(Path::new("a"), b"[").is_err());
    }

    #[test]
    fn stdin_gets_name_version_prev_result_and_ports() {
        let l = parse(
            Path::new("a"),
            br#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"a"},{"type":"portmap","capabilities":{"portMappings":true}}]}"#,
        )
        .unwrap();
        let ports = [PortMapping {
            host_port: 8080,
            container_port: 80,
            protocol: "tcp".into(),
            host_ip: None,
        }];
        let first: Value =
            serde_json::from_slice(&l.plugin_stdin(&l.plugins[0], None, &ports)).unwrap();
        assert_eq!(first["name"], "n");
        assert!(first.get("runtimeConfig").is_none());
        let prev = json!({"ips": []});
        let second: Value =
            serde_json::from_slice(&l.plugin_stdin(&l.plugins[1], Some(&prev), &ports)).unwrap();
        assert_eq!(second["runtimeConfig"]["portMappings"][0]["hostPort"], 8080);
        assert_eq!(second["prevResult"], prev);
        assert!(second.get("capabilities").is_none());
    }
}
