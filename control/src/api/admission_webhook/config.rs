//! Validating- and MutatingWebhookConfigurations read and checked as kube-apiserver does when
//! they are written (422 with field causes in kube's words: webhook names, client configs,
//! `sideEffects`, `admissionReviewVersions`, timeouts, rules, selectors, match conditions),
//! and compiled for admission: rules into the admission-policy matcher's form, match
//! conditions into CEL programs, the `caBundle` into a TLS client configuration.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use cel::Program;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use serde_json::Value;

use crate::api::admission_policy::compiled::{quoted, rules, selector, Match};
use crate::crd::cel::compile_with;
use crate::crd::definition::strings;
use crate::status::FieldCause;

/// The variables a webhook's match conditions may name (kube's also has `authorizer`).
const VARIABLES: &[&str] = &["object", "oldObject", "request"];
/// The AdmissionReview versions bosun sends, in its order of preference.
pub const REVIEW_VERSIONS: &[&str] = &["v1", "v1beta1"];
const SIDE_EFFECTS: &[&str] = &["None", "NoneOnDryRun"];
/// Debian's bundle of the system's trusted CAs: a webhook without `caBundle` is verified
/// against it, as kube-apiserver verifies against its system roots.
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";
const MAX_MATCH_CONDITIONS: usize = 64;

/// Where a webhook is called.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// `clientConfig.url`: `https://host[:port]/path`.
    Url {
        host: String,
        port: u16,
        path: String,
    },
    /// `clientConfig.service`: called at one of the Service's ready endpoints, verified as
    /// `<name>.<namespace>.svc`.
    Service {
        namespace: String,
        name: String,
        path: String,
        port: u16,
    },
}

/// One webhook of a configuration, ready to call.
pub struct Webhook {
    /// The configuration's name (webhooks run in the order of their configurations' names).
    pub configuration: String,
    pub name: String,
    pub mutating: bool,
    pub target: Target,
    /// The TLS client verifying the webhook's server, or why none could be built.
    pub tls: Result<Arc<ClientConfig>, String>,
    pub matching: Match,
    /// `failurePolicy: Ignore`: a webhook that cannot be called or errors lets the request pass.
    pub ignore_failures: bool,
    pub timeout: Duration,
    /// The AdmissionReview version sent (`v1` or `v1beta1`).
    pub review_version: &'static str,
    pub conditions: Vec<(String, Program)>,
    /// `reinvocationPolicy: IfNeeded` (mutating webhooks).
    pub reinvoke: bool,
    /// `matchPolicy: Equivalent` (the default): rules also match the kind's other versions.
    pub equivalent: bool,
}

/// Whether `name` is kube's "fully qualified" webhook name: a DNS subdomain of at least
/// three labels.
fn qualified(name: &str) -> bool {
    let labels: Vec<&str> = name.split('.').collect();
    labels.len() >= 3
        && name.len() <= 253
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// A webhook configuration's webhooks compiled, with what kube (or bosun) refuses in it.
pub fn configuration(object: &Value, mutating: bool) -> (Vec<Webhook>, Vec<FieldCause>) {
    let configuration = object["metadata"]["name"].as_str().unwrap_or("").to_owned();
    let mut causes = Vec::new();
    let mut names = HashSet::new();
    let mut webhooks = Vec::new();
    for (index, hook) in object["webhooks"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let at = format!("webhooks[{index}]");
        let name = hook["name"].as_str().unwrap_or("").to_owned();
        if name.is_empty() {
            causes.push(FieldCause::required(&format!("{at}.name")));
        } else if !qualified(&name) {
            causes.push(FieldCause::invalid(
                &format!("{at}.name"),
                &quoted(&name),
                "should be a domain with at least three segments separated by dots",
            ));
        } else if !names.insert(name.clone()) {
            causes.push(FieldCause {
                field: format!("{at}.name"),
                reason: "FieldValueDuplicate",
                message: format!("Duplicate value: {}", quoted(&name)),
            });
        }
        let before = causes.len();
        let compiled = webhook(hook, &at, mutating, &mut causes);
        if causes.len() == before {
            if let Some(mut compiled) = compiled {
                compiled.configuration = configuration.clone();
                compiled.name = name;
                webhooks.push(compiled);
            }
        }
    }
    (webhooks, causes)
}

fn webhook(
    hook: &Value,
    at: &str,
    mutating: bool,
    causes: &mut Vec<FieldCause>,
) -> Option<Webhook> {
    let target = client_config(&hook["clientConfig"], &format!("{at}.clientConfig"), causes);
    match hook["sideEffects"].as_str() {
        None => causes.push(
            FieldCause::required(&format!("{at}.sideEffects"))
                .with_message("Required value: must specify one of None, NoneOnDryRun"),
        ),
        Some(effects) if !SIDE_EFFECTS.contains(&effects) => causes.push(
            FieldCause::not_supported(&format!("{at}.sideEffects"), effects, SIDE_EFFECTS),
        ),
        Some(_) => {}
    }
    let versions = strings(&hook["admissionReviewVersions"]);
    let review_version = versions
        .iter()
        .find_map(|v| REVIEW_VERSIONS.iter().find(|known| **known == v.as_str()))
        .copied();
    if versions.is_empty() {
        causes.push(
            FieldCause::required(&format!("{at}.admissionReviewVersions"))
                .with_message("Required value: must specify one of v1, v1beta1"),
        );
    } else if review_version.is_none() {
        causes.push(FieldCause::invalid(
            &format!("{at}.admissionReviewVersions"),
            &format!(
                "[]string{{{}}}",
                versions
                    .iter()
                    .map(|v| quoted(v))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "must include at least one of v1, v1beta1",
        ));
    }
    let timeout = hook["timeoutSeconds"].as_i64().unwrap_or(10);
    if !(1..=30).contains(&timeout) {
        causes.push(FieldCause::invalid(
            &format!("{at}.timeoutSeconds"),
            &timeout.to_string(),
            "the timeout value must be between 1 and 30 seconds",
        ));
    }
    let failure = hook["failurePolicy"].as_str().unwrap_or("Fail");
    if !matches!(failure, "Fail" | "Ignore") {
        causes.push(FieldCause::not_supported(
            &format!("{at}.failurePolicy"),
            failure,
            &["Fail", "Ignore"],
        ));
    }
    let match_policy = hook["matchPolicy"].as_str().unwrap_or("Equivalent");
    if !matches!(match_policy, "Exact" | "Equivalent") {
        causes.push(FieldCause::not_supported(
            &format!("{at}.matchPolicy"),
            match_policy,
            &["Equivalent", "Exact"],
        ));
    }
    let reinvocation = hook["reinvocationPolicy"].as_str().unwrap_or("Never");
    if mutating && !matches!(reinvocation, "Never" | "IfNeeded") {
        causes.push(FieldCause::not_supported(
            &format!("{at}.reinvocationPolicy"),
            reinvocation,
            &["IfNeeded", "Never"],
        ));
    }
    let rules = rules(&hook["rules"], &format!("{at}.rules"), causes);
    let matching = Match {
        rules,
        exclude: Vec::new(),
        namespace_selector: selector(
            &hook["namespaceSelector"],
            &format!("{at}.namespaceSelector"),
            causes,
        ),
        object_selector: selector(
            &hook["objectSelector"],
            &format!("{at}.objectSelector"),
            causes,
        ),
    };
    let conditions = match_conditions(&hook["matchConditions"], at, causes);
    let tls = tls_config(&hook["clientConfig"]["caBundle"]);
    Some(Webhook {
        configuration: String::new(),
        name: String::new(),
        mutating,
        target: target?,
        tls,
        matching,
        ignore_failures: failure == "Ignore",
        timeout: Duration::from_secs(u64::try_from(timeout.clamp(1, 30)).unwrap_or(10)),
        review_version: review_version.unwrap_or("v1"),
        conditions,
        reinvoke: reinvocation == "IfNeeded",
        equivalent: match_policy == "Equivalent",
    })
}

fn match_conditions(
    list: &Value,
    at: &str,
    causes: &mut Vec<FieldCause>,
) -> Vec<(String, Program)> {
    let listed = list.as_array().cloned().unwrap_or_default();
    if listed.len() > MAX_MATCH_CONDITIONS {
        causes.push(FieldCause {
            field: format!("{at}.matchConditions"),
            reason: "FieldValueTooMany",
            message: format!(
                "Too many: {}: must have at most {MAX_MATCH_CONDITIONS} items",
                listed.len()
            ),
        });
    }
    let mut seen = HashSet::new();
    let mut conditions = Vec::new();
    for (i, condition) in listed.iter().enumerate() {
        let field = format!("{at}.matchConditions[{i}]");
        let name = condition["name"].as_str().unwrap_or("").to_owned();
        if name.is_empty() {
            causes.push(FieldCause::required(&format!("{field}.name")));
        } else if !seen.insert(name.clone()) {
            causes.push(FieldCause {
                field: format!("{field}.name"),
                reason: "FieldValueDuplicate",
                message: format!("Duplicate value: {}", quoted(&name)),
            });
        }
        let text = condition["expression"].as_str().unwrap_or("");
        if text.trim().is_empty() {
            causes.push(FieldCause::required(&format!("{field}.expression")));
            continue;
        }
        match compile_with(text, VARIABLES) {
            Ok(program) => conditions.push((name, program)),
            Err(why) => causes.push(FieldCause::invalid(
                &format!("{field}.expression"),
                &quoted(text),
                &format!("compilation failed: {why}"),
            )),
        }
    }
    conditions
}

/// `clientConfig`: exactly one of `url` (https, a host, no user, query or fragment) and
/// `service` (name, namespace, a path starting with `/`, a port).
pub(crate) fn client_config(
    config: &Value,
    at: &str,
    causes: &mut Vec<FieldCause>,
) -> Option<Target> {
    match (&config["url"], &config["service"]) {
        (Value::String(url), Value::Null) => match parse_url(url) {
            Ok(target) => Some(target),
            Err(why) => {
                causes.push(FieldCause::invalid(&format!("{at}.url"), &quoted(url), why));
                None
            }
        },
        (Value::Null, service) if service.is_object() => {
            let before = causes.len();
            let field = |name: &str| service[name].as_str().unwrap_or("").to_owned();
            let (name, namespace, path) = (field("name"), field("namespace"), field("path"));
            for (key, value) in [("name", &name), ("namespace", &namespace)] {
                if value.is_empty() {
                    causes.push(FieldCause::required(&format!("{at}.service.{key}")));
                }
            }
            if !path.is_empty() && !path.starts_with('/') {
                causes.push(FieldCause::invalid(
                    &format!("{at}.service.path"),
                    &quoted(&path),
                    "must start with a '/'",
                ));
            }
            let port = service["port"].as_i64().unwrap_or(443);
            let port = match u16::try_from(port).ok().filter(|p| *p > 0) {
                Some(port) => port,
                None => {
                    causes.push(FieldCause::invalid(
                        &format!("{at}.service.port"),
                        &port.to_string(),
                        "port is not valid: must be between 1 and 65535, inclusive",
                    ));
                    443
                }
            };
            (causes.len() == before).then(|| Target::Service {
                namespace,
                name,
                path: if path.is_empty() {
                    "/".to_owned()
                } else {
                    path
                },
                port,
            })
        }
        _ => {
            causes.push(
                FieldCause::required(at)
                    .with_message("Required value: exactly one of url or service is required"),
            );
            None
        }
    }
}

/// An https URL as kube accepts it for a webhook.
pub fn parse_url(url: &str) -> Result<Target, &'static str> {
    let Some(rest) = url.strip_prefix("https://") else {
        return Err("'https' is the only allowed URL scheme");
    };
    if url.contains('#') {
        return Err("fragments are not permitted in the URL");
    }
    if url.contains('?') {
        return Err("query parameters are not permitted in the URL");
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.contains('@') {
        return Err("user information is not permitted in the URL");
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(':') && !port.contains(']') => (
            host,
            port.parse::<u16>().map_err(|_| "invalid port in the URL")?,
        ),
        _ => (authority, 443),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err("host must be specified");
    }
    Ok(Target::Url {
        host: host.to_owned(),
        port,
        path: path.to_owned(),
    })
}

/// The CA certificates of a PEM bundle (`what` names it in errors: `caBundle`).
pub(crate) fn root_store(pem: &[u8], what: &str) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(pem) {
        let certificate = certificate.map_err(|e| format!("{what}: {e}"))?;
        roots.add(certificate).map_err(|e| format!("{what}: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!("{what} holds no PEM certificate"));
    }
    Ok(roots)
}

/// The TLS client trusting `caBundle` (base64 of PEM certificates), or the system's CAs.
pub(crate) fn tls_config(bundle: &Value) -> Result<Arc<ClientConfig>, String> {
    let pem = match bundle.as_str().filter(|b| !b.is_empty()) {
        Some(encoded) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| format!("caBundle is not base64: {e}"))?,
        None => std::fs::read(SYSTEM_ROOTS)
            .map_err(|e| format!("no caBundle, and the system CAs {SYSTEM_ROOTS}: {e}"))?,
    };
    let roots = root_store(&pem, "caBundle")?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn causes(hook: Value) -> Vec<String> {
        let object = json!({"metadata": {"name": "c"}, "webhooks": [hook]});
        configuration(&object, true)
            .1
            .into_iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    fn good() -> Value {
        json!({"name": "check.example.com", "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "clientConfig": {"url": "https://127.0.0.1:9443/check"},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                "resources": ["configmaps"]}]})
    }

    #[test]
    fn good_webhooks_compile_and_bad_ones_get_kubes_texts() {
        assert_eq!(causes(good()), Vec::<String>::new());
        let with = |key: &str, value: Value| {
            let mut hook = good();
            hook[key] = value;
            causes(hook)
        };
        assert_eq!(
            with("name", json!("check")),
            ["webhooks[0].name: Invalid value: \"check\": should be a domain with at least three segments separated by dots"]
        );
        assert_eq!(
            with("sideEffects", Value::Null),
            ["webhooks[0].sideEffects: Required value: must specify one of None, NoneOnDryRun"]
        );
        assert_eq!(
            with("sideEffects", json!("Some")),
            ["webhooks[0].sideEffects: Unsupported value: \"Some\": supported values: \"None\", \"NoneOnDryRun\""]
        );
        assert_eq!(
            with("admissionReviewVersions", json!(["v2"])),
            ["webhooks[0].admissionReviewVersions: Invalid value: []string{\"v2\"}: must include at least one of v1, v1beta1"]
        );
        assert_eq!(
            with("timeoutSeconds", json!(31)),
            ["webhooks[0].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and 30 seconds"]
        );
        assert_eq!(
            with("clientConfig", json!({"url": "http://x.example.com/"})),
            ["webhooks[0].clientConfig.url: Invalid value: \"http://x.example.com/\": 'https' is the only allowed URL scheme"]
        );
        assert_eq!(
            with("clientConfig", json!({})),
            ["webhooks[0].clientConfig: Required value: exactly one of url or service is required"]
        );
        assert_eq!(
            with("clientConfig", json!({"service": {"name": "w", "path": "x"}})),
            [
                "webhooks[0].clientConfig.service.namespace: Required value",
                "webhooks[0].clientConfig.service.path: Invalid value: \"x\": must start with a '/'"
            ]
        );
        assert_eq!(
            with("matchConditions", json!([{"name": "a", "expression": "bogus == 1"}])),
            ["webhooks[0].matchConditions[0].expression: Invalid value: \"bogus == 1\": compilation failed: ERROR: <input>:1:1: undeclared reference to 'bogus' (in container '')"]
        );
        let mut connect = good();
        connect["rules"][0]["operations"] = json!(["CONNECT", "PATCH"]);
        assert_eq!(
            causes(connect),
            ["webhooks[0].rules[0].operations[1]: Unsupported value: \"PATCH\": supported values: \"*\", \"CREATE\", \"UPDATE\", \"DELETE\", \"CONNECT\""]
        );
        let twice = json!({"metadata": {"name": "c"}, "webhooks": [good(), good()]});
        let (_, found) = configuration(&twice, false);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].reason, "FieldValueDuplicate");
    }

    #[test]
    fn urls_split_into_host_port_and_path() {
        assert_eq!(
            parse_url("https://127.0.0.1:9443/check"),
            Ok(Target::Url {
                host: "127.0.0.1".to_owned(),
                port: 9443,
                path: "/check".to_owned()
            })
        );
        assert_eq!(
            parse_url("https://[::1]/"),
            Ok(Target::Url {
                host: "::1".to_owned(),
                port: 443,
                path: "/".to_owned()
            })
        );
        assert_eq!(
            parse_url("https://a.example.com"),
            Ok(Target::Url {
                host: "a.example.com".to_owned(),
                port: 443,
                path: "/".to_owned()
            })
        );
        assert!(parse_url("https://u@h/").is_err());
        assert!(parse_url("https://h/?a=b").is_err());
        assert!(parse_url("https://h/#x").is_err());
        assert!(parse_url("https:///x").is_err());
    }
}
