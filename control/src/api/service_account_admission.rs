//! kube-apiserver's ServiceAccount admission on pod create
//! (`plugin/pkg/admission/serviceaccount`): a pod that names no account runs as `default` (the
//! deprecated `serviceAccount` field counts as naming one); the account must exist (else 403,
//! `error looking up service account NS/NAME: serviceaccount "NAME" not found`); unless
//! `automountServiceAccountToken` says no (the pod's setting wins, then the account's), the
//! pod gets the projected volume `kube-api-access-<5 random>` (a bound token of 3607 s, the
//! `kube-root-ca.crt` ConfigMap's `ca.crt` and the namespace) mounted read-only at
//! `/var/run/secrets/kubernetes.io/serviceaccount` in every container and init container that
//! has nothing mounted there yet; and a pod without `imagePullSecrets` gets the account's.
//! Mirror pods are not changed, and may reference neither accounts nor token projections.

use serde_json::{json, Value};

use super::{decode_stored, path::object_key, Call};
use crate::authz::admission::admission_forbidden;
use crate::kinds::{self, Resource};
use crate::status::ApiError;

/// Where the token, CA and namespace appear in every container.
pub const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The prefix of the injected volume's name.
pub const VOLUME_PREFIX: &str = "kube-api-access-";
/// The ConfigMap every namespace has with the cluster CA (`controllers::root_ca`).
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";
/// The token lifetime kube asks for (an hour and 7 s: the server knows it as kubelet's).
pub const TOKEN_EXPIRATION_SECONDS: i64 = 3607;
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
const DEFAULT_ACCOUNT: &str = "default";

fn is_pod(resource: &Resource) -> bool {
    (resource.group, resource.kind) == ("", "Pod")
}

/// Admits a pod being created (other kinds pass unchanged).
pub async fn admit_create(call: &Call, pod: &mut Value) -> Result<(), ApiError> {
    let resource = call.resource();
    if !is_pod(resource) {
        return Ok(());
    }
    let name = pod["metadata"]["name"].as_str().unwrap_or("").to_owned();
    if pod["metadata"]["annotations"][MIRROR_ANNOTATION].is_string() {
        return check_mirror(pod).map_err(|why| admission_forbidden(resource, &name, why));
    }
    let ns = pod["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_owned();
    let account_name = account_of(pod);
    pod["spec"]["serviceAccountName"] = json!(account_name);
    pod["spec"]["serviceAccount"] = json!(account_name);
    let accounts = kinds::find("", "v1", "serviceaccounts")
        .ok_or_else(|| ApiError::internal("the kinds table has no serviceaccounts"))?;
    let kv = call
        .state
        .store
        .get(&object_key(accounts, Some(&ns), &account_name))
        .await
        .map_err(super::map_store_error)?;
    let account = match kv {
        Some(kv) => decode_stored(&kv)?,
        None => {
            let why = format!("error looking up service account {ns}/{account_name}: serviceaccount {account_name:?} not found");
            return Err(admission_forbidden(resource, &name, &why));
        }
    };
    mutate(
        pod,
        &account,
        &crate::names::random_suffix(crate::names::SUFFIX_LEN),
    );
    Ok(())
}

/// The account a pod names: `serviceAccountName`, else the deprecated `serviceAccount`, else
/// `default`.
fn account_of(pod: &Value) -> String {
    ["serviceAccountName", "serviceAccount"]
        .iter()
        .filter_map(|k| pod["spec"][*k].as_str())
        .find(|n| !n.is_empty())
        .unwrap_or(DEFAULT_ACCOUNT)
        .to_owned()
}

/// kube's checks of a mirror pod, whose spec is never changed.
fn check_mirror(pod: &Value) -> Result<(), &'static str> {
    if pod["spec"]["serviceAccountName"]
        .as_str()
        .is_some_and(|n| !n.is_empty())
    {
        return Err("a mirror pod may not reference service accounts");
    }
    let token_projection = pod["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["projected"]["sources"].as_array())
        .flatten()
        .any(|s| s["serviceAccountToken"].is_object());
    if token_projection {
        return Err("a mirror pod may not use ServiceAccountToken volume projections");
    }
    Ok(())
}

/// Whether the pod gets a token: its own setting wins, then the account's; yes by default.
fn automount(pod: &Value, account: &Value) -> bool {
    pod["spec"]["automountServiceAccountToken"]
        .as_bool()
        .or_else(|| account["automountServiceAccountToken"].as_bool())
        .unwrap_or(true)
}

/// The token volume, the mounts and the account's pull secrets (`suffix`: the volume name's).
fn mutate(pod: &mut Value, account: &Value, suffix: &str) {
    if automount(pod, account) {
        mount_token(pod, suffix);
    }
    let has_pull_secrets = pod["spec"]["imagePullSecrets"]
        .as_array()
        .is_some_and(|a| !a.is_empty());
    if !has_pull_secrets {
        let secrets: Vec<Value> = account["imagePullSecrets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["name"].as_str())
            .map(|n| json!({"name": n}))
            .collect();
        if !secrets.is_empty() {
            pod["spec"]["imagePullSecrets"] = json!(secrets);
        }
    }
}

/// kube's `mountServiceAccountToken`: an existing `kube-api-access-*` volume is reused.
fn mount_token(pod: &mut Value, suffix: &str) {
    let existing = pod["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["name"].as_str())
        .find(|n| n.starts_with(VOLUME_PREFIX))
        .map(str::to_owned);
    let volume_name = existing
        .clone()
        .unwrap_or_else(|| format!("{VOLUME_PREFIX}{suffix}"));
    let mount = json!({"name": volume_name, "readOnly": true, "mountPath": MOUNT_PATH});
    let mut needed = false;
    for list in ["initContainers", "containers"] {
        // `get_mut`, not indexing: `pod["spec"][list]` would write a null list into the pod.
        let Some(containers) = pod["spec"].get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in containers {
            let mounted = c["volumeMounts"]
                .as_array()
                .is_some_and(|m| m.iter().any(|m| m["mountPath"] == MOUNT_PATH));
            if mounted {
                continue;
            }
            if !c["volumeMounts"].is_array() {
                c["volumeMounts"] = json!([]);
            }
            if let Some(mounts) = c["volumeMounts"].as_array_mut() {
                mounts.push(mount.clone());
            }
            needed = true;
        }
    }
    if existing.is_none() && needed {
        if !pod["spec"]["volumes"].is_array() {
            pod["spec"]["volumes"] = json!([]);
        }
        if let Some(volumes) = pod["spec"]["volumes"].as_array_mut() {
            volumes.push(token_volume(&volume_name));
        }
    }
}

/// kube's `TokenVolumeSource`, with its explicit `defaultMode` 0644.
pub fn token_volume(name: &str) -> Value {
    json!({"name": name, "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
        {"configMap": {"name": ROOT_CA_CONFIG_MAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
    ]}})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: Value) -> Value {
        json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": spec})
    }

    #[test]
    fn every_container_mounts_the_token_volume_unless_it_mounts_that_path() {
        let mut p = pod(json!({
            "initContainers": [{"name": "i"}],
            "containers": [{"name": "a"}, {"name": "b", "volumeMounts": [
                {"name": "own", "mountPath": MOUNT_PATH}]}],
            "volumes": [{"name": "own", "emptyDir": {}}]}));
        mutate(&mut p, &json!({}), "x2b4c");
        let volumes = p["spec"]["volumes"].as_array().unwrap();
        assert_eq!(volumes.len(), 2);
        assert_eq!(volumes[1], token_volume("kube-api-access-x2b4c"));
        assert_eq!(
            volumes[1]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
            3607
        );
        let want =
            json!([{"name": "kube-api-access-x2b4c", "readOnly": true, "mountPath": MOUNT_PATH}]);
        assert_eq!(p["spec"]["initContainers"][0]["volumeMounts"], want);
        assert_eq!(p["spec"]["containers"][0]["volumeMounts"], want);
        assert_eq!(p["spec"]["containers"][1]["volumeMounts"][0]["name"], "own");
        assert_eq!(
            p["spec"]["containers"][1]["volumeMounts"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        // A pod without init containers gets no `initContainers` key (not a null).
        let mut plain = pod(json!({"containers": [{"name": "a"}]}));
        mutate(&mut plain, &json!({}), "x2b4c");
        assert!(plain["spec"].get("initContainers").is_none(), "{plain}");
        // A second pass (an existing kube-api-access volume) adds nothing.
        let before = p.clone();
        mutate(&mut p, &json!({}), "zzzzz");
        assert_eq!(p, before);
    }

    #[test]
    fn the_pods_automount_setting_wins_over_the_accounts() {
        let off = json!({"automountServiceAccountToken": false});
        let on = json!({"automountServiceAccountToken": true});
        let mut p = pod(json!({"containers": [{"name": "a"}]}));
        mutate(&mut p, &off, "aaaaa");
        assert!(p["spec"]["volumes"].is_null());
        let mut p =
            pod(json!({"automountServiceAccountToken": true, "containers": [{"name": "a"}]}));
        mutate(&mut p, &off, "aaaaa");
        assert_eq!(p["spec"]["volumes"].as_array().unwrap().len(), 1);
        let mut p =
            pod(json!({"automountServiceAccountToken": false, "containers": [{"name": "a"}]}));
        mutate(&mut p, &on, "aaaaa");
        assert!(p["spec"]["volumes"].is_null());
    }

    #[test]
    fn the_accounts_pull_secrets_go_to_pods_without_their_own() {
        let account = json!({"imagePullSecrets": [{"name": "reg"}]});
        let mut p = pod(json!({"containers": [{"name": "a"}]}));
        mutate(&mut p, &account, "aaaaa");
        assert_eq!(p["spec"]["imagePullSecrets"], json!([{"name": "reg"}]));
        let mut p = pod(json!({"imagePullSecrets": [{"name": "own"}], "containers": []}));
        mutate(&mut p, &account, "aaaaa");
        assert_eq!(p["spec"]["imagePullSecrets"], json!([{"name": "own"}]));
    }

    #[test]
    fn accounts_names_suffixes_and_mirror_pods_follow_kube() {
        assert_eq!(account_of(&pod(json!({}))), "default");
        assert_eq!(account_of(&pod(json!({"serviceAccount": "old"}))), "old");
        assert_eq!(
            account_of(&pod(
                json!({"serviceAccount": "old", "serviceAccountName": "new"})
            )),
            "new"
        );
        assert!(check_mirror(&pod(json!({"containers": []}))).is_ok());
        assert_eq!(
            check_mirror(&pod(json!({"serviceAccountName": "x"}))),
            Err("a mirror pod may not reference service accounts")
        );
        let projected = json!({"volumes": [{"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}]});
        assert!(check_mirror(&pod(projected)).is_err());
    }
}
