//! The API server's checks of `valueFrom` and `envFrom`, and the refusal, in a static
//! manifest, of references to API objects (a static pod has no API to read them from, and
//! kubelet refuses them too). Pure.

use super::env_source::{subscripted_field, EnvVarSource, ENV_FIELD_PATHS, RESOURCE_FIELDS};
use super::error::SpecError;
use super::pod::{Container, Pod};

/// The API server's checks of one `valueFrom` at `field`.
pub(super) fn validate_env_source(
    field: &str,
    source: &EnvVarSource,
    container: &Container,
) -> Result<(), SpecError> {
    let set = [
        source.field_ref.is_some(),
        source.resource_field_ref.is_some(),
        source.config_map_key_ref.is_some(),
        source.secret_key_ref.is_some(),
    ];
    match set.iter().filter(|s| **s).count() {
        0 => {
            let message = "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`";
            return Err(SpecError::new(field, message));
        }
        1 => {}
        _ => {
            let message = "may not have more than one field specified at a time";
            return Err(SpecError::new(field, message));
        }
    }
    if let Some(f) = &source.field_ref {
        let path = f.field_path.as_str();
        if !ENV_FIELD_PATHS.contains(&path) && subscripted_field(path).is_none() {
            let message = format!("{path:?}: supported values: {ENV_FIELD_PATHS:?}, metadata.labels['<KEY>'], metadata.annotations['<KEY>']");
            return Err(SpecError::new(
                format!("{field}.fieldRef.fieldPath"),
                message,
            ));
        }
        if f.api_version.as_deref().is_some_and(|v| v != "v1") {
            let message = "only \"v1\" is supported";
            return Err(SpecError::new(
                format!("{field}.fieldRef.apiVersion"),
                message,
            ));
        }
    }
    if let Some(r) = &source.resource_field_ref {
        if !RESOURCE_FIELDS.contains(&r.resource.as_str()) {
            let message = format!("{:?}: supported values: {RESOURCE_FIELDS:?}", r.resource);
            let f = format!("{field}.resourceFieldRef.resource");
            return Err(SpecError::new(f, message));
        }
        let named = r.container_name.as_deref().filter(|n| !n.is_empty());
        if named.is_some_and(|n| n != container.name) {
            // The API server allows another container of the pod; kubelet resolves it. The
            // agent resolves only the container's own resources.
            let f = format!("{field}.resourceFieldRef.containerName");
            return Err(SpecError::new(
                f,
                "not supported yet (only the container itself)",
            ));
        }
        if let Some(d) = &r.divisor {
            d.milli_value()
                .map_err(|e| e.at(&format!("{field}.resourceFieldRef.divisor")))?;
        }
    }
    for (name, sel) in [
        ("configMapKeyRef", &source.config_map_key_ref),
        ("secretKeyRef", &source.secret_key_ref),
    ] {
        if let Some(sel) = sel {
            if sel.name.is_empty() {
                return Err(SpecError::new(
                    format!("{field}.{name}.name"),
                    "Required value",
                ));
            }
            if sel.key.is_empty() {
                return Err(SpecError::new(
                    format!("{field}.{name}.key"),
                    "Required value",
                ));
            }
        }
    }
    Ok(())
}

/// The API server's checks of `envFrom`.
pub(super) fn validate_env_from(path: &str, c: &Container) -> Result<(), SpecError> {
    for (i, from) in c.env_from.iter().enumerate() {
        let field = format!("{path}.envFrom[{i}]");
        match (&from.config_map_ref, &from.secret_ref) {
            (Some(_), Some(_)) => {
                let message = "may not have more than one field specified at a time";
                return Err(SpecError::new(field, message));
            }
            (None, None) => {
                let message = "must specify one of: `configMapRef` or `secretRef`";
                return Err(SpecError::new(field, message));
            }
            (Some(r), None) | (None, Some(r)) if r.name.is_empty() => {
                let which = if from.config_map_ref.is_some() {
                    "configMapRef"
                } else {
                    "secretRef"
                };
                return Err(SpecError::new(
                    format!("{field}.{which}.name"),
                    "Required value",
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Refuses, in a static manifest, the first reference to a ConfigMap, Secret, claim or service
/// account (its name or a token projection).
pub fn refuse_api_references(pod: &Pod) -> Result<(), SpecError> {
    let why = "a static pod cannot reference API objects (no API to read them from)";
    if !pod.spec.image_pull_secrets.is_empty() {
        return Err(SpecError::new("spec.imagePullSecrets", why));
    }
    for (i, v) in pod.spec.volumes.iter().enumerate() {
        if v.config_map.is_some() {
            return Err(SpecError::new(format!("spec.volumes[{i}].configMap"), why));
        }
        if v.secret.is_some() {
            return Err(SpecError::new(format!("spec.volumes[{i}].secret"), why));
        }
        if v.persistent_volume_claim.is_some() {
            let f = format!("spec.volumes[{i}].persistentVolumeClaim");
            return Err(SpecError::new(f, why));
        }
        let sources = v
            .projected
            .iter()
            .flat_map(|p| p.sources.iter().enumerate());
        for (j, s) in sources {
            for (name, o) in [("configMap", &s.config_map), ("secret", &s.secret)] {
                if o.is_some() {
                    let f = format!("spec.volumes[{i}].projected.sources[{j}].{name}");
                    return Err(SpecError::new(f, why));
                }
            }
            if s.service_account_token.is_some() {
                let f = format!("spec.volumes[{i}].projected.sources[{j}].serviceAccountToken");
                let why =
                    "a static pod cannot have a service account token (no API to request it from)";
                return Err(SpecError::new(f, why));
            }
        }
    }
    if pod.spec.service_account_name.is_some() {
        let why =
            "a static pod cannot run as a service account (no API to request its tokens from)";
        return Err(SpecError::new("spec.serviceAccountName", why));
    }
    for (path, c) in pod.spec.all_containers() {
        for (i, var) in c.env.iter().enumerate() {
            let Some(from) = &var.value_from else {
                continue;
            };
            if from.config_map_key_ref.is_some() {
                let f = format!("{path}.env[{i}].valueFrom.configMapKeyRef");
                return Err(SpecError::new(f, why));
            }
            if from.secret_key_ref.is_some() {
                let f = format!("{path}.env[{i}].valueFrom.secretKeyRef");
                return Err(SpecError::new(f, why));
            }
        }
        if !c.env_from.is_empty() {
            return Err(SpecError::new(format!("{path}.envFrom"), why));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::spec::{parse_pod, pod_from_api};

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: x\n    ENV\n";

    #[test]
    fn static_pods_may_not_have_image_pull_secrets_but_api_pods_may() {
        let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  imagePullSecrets: [{name: regcred}]\n  containers:\n  - name: c\n    image: x\n";
        let err = parse_pod(yaml).expect_err("static pod");
        assert_eq!(err.field, "spec.imagePullSecrets", "{err}");
        assert!(err.message.contains("static pod"), "{err}");
        let mut value: serde_json::Value = serde_yaml::from_str(yaml).expect("yaml");
        value["spec"]["nodeName"] = "n1".into();
        let pod = pod_from_api(value, "n1").expect("an API pod may");
        assert_eq!(pod.spec.image_pull_secrets[0].name, "regcred");
    }

    #[test]
    fn static_pods_may_not_reference_config_maps_or_secrets_but_api_pods_may() {
        let table = [
            (
                "env: [{name: A, valueFrom: {configMapKeyRef: {name: cm, key: k}}}]",
                "spec.containers[0].env[0].valueFrom.configMapKeyRef",
            ),
            (
                "env: [{name: A, valueFrom: {secretKeyRef: {name: s, key: k}}}]",
                "spec.containers[0].env[0].valueFrom.secretKeyRef",
            ),
            (
                "envFrom: [{configMapRef: {name: cm}}]",
                "spec.containers[0].envFrom",
            ),
        ];
        for (env, field) in table {
            let yaml = POD.replace("ENV", env);
            let err = parse_pod(&yaml).expect_err(env);
            assert_eq!(err.field, field, "{err}");
            assert!(err.message.contains("static pod"), "{err}");
            let mut value: serde_json::Value = serde_yaml::from_str(&yaml).expect("yaml");
            value["spec"]["nodeName"] = "n1".into();
            pod_from_api(value, "n1").expect("an API pod may");
        }
        let fields = POD.replace(
            "ENV",
            "env: [{name: A, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]",
        );
        parse_pod(&fields).expect("a field reference needs no API");
        let bad = POD.replace(
            "ENV",
            "env: [{name: A, valueFrom: {fieldRef: {fieldPath: status.phase}}}]",
        );
        let err = parse_pod(&bad).expect_err("unsupported path");
        assert_eq!(
            err.field,
            "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath"
        );
    }
}
