//! The API server's checks of `spec.volumes` and of a container's `volumeMounts`, each
//! failure naming its field. Pure.

use std::collections::BTreeSet;
use std::path::{Component, Path};

use super::env_source::{subscripted_field, RESOURCE_FIELDS};
use super::error::SpecError;
use super::pod::{Container, PodSpec};
use super::volume::{
    DownwardApiVolumeFile, EmptyDirVolumeSource, HostPathVolumeSource, KeyToPath,
    ProjectedVolumeSource, HOST_PATH_TYPES, VOLUME_FIELD_PATHS,
};

/// The names of `spec.volumes` after checking each volume: a unique DNS-1123 label, exactly
/// one source, and the source's own fields.
pub(super) fn validate_volumes(spec: &PodSpec) -> Result<BTreeSet<&str>, SpecError> {
    let mut names = BTreeSet::new();
    for (i, volume) in spec.volumes.iter().enumerate() {
        let field = format!("spec.volumes[{i}]");
        if let Some(problem) = super::names::dns1123_label_error(&volume.name) {
            return Err(SpecError::new(format!("{field}.name"), problem));
        }
        if !names.insert(volume.name.as_str()) {
            let message = format!("duplicate volume name {:?}", volume.name);
            return Err(SpecError::new(format!("{field}.name"), message));
        }
        let sources = [
            volume.empty_dir.is_some(),
            volume.host_path.is_some(),
            volume.config_map.is_some(),
            volume.secret.is_some(),
            volume.persistent_volume_claim.is_some(),
            volume.downward_api.is_some(),
            volume.projected.is_some(),
        ];
        match sources.iter().filter(|s| **s).count() {
            0 => return Err(SpecError::new(field, "must specify a volume type")),
            1 => {}
            _ => {
                let message = "may not specify more than 1 volume type";
                return Err(SpecError::new(field, message));
            }
        }
        if let Some(e) = &volume.empty_dir {
            validate_empty_dir(&format!("{field}.emptyDir"), e)?;
        }
        if let Some(h) = &volume.host_path {
            validate_host_path(&format!("{field}.hostPath"), h)?;
        }
        if let Some(c) = &volume.config_map {
            let f = format!("{field}.configMap");
            if c.name.is_empty() {
                return Err(SpecError::new(format!("{f}.name"), "Required value"));
            }
            validate_items(&f, &c.items, c.default_mode)?;
        }
        if let Some(s) = &volume.secret {
            let f = format!("{field}.secret");
            if s.secret_name.is_empty() {
                return Err(SpecError::new(format!("{f}.secretName"), "Required value"));
            }
            validate_items(&f, &s.items, s.default_mode)?;
        }
        if let Some(d) = &volume.downward_api {
            let f = format!("{field}.downwardAPI");
            check_mode(&format!("{f}.defaultMode"), d.default_mode)?;
            validate_downward_items(&f, &d.items, spec)?;
        }
        if let Some(p) = &volume.projected {
            validate_projected(&format!("{field}.projected"), p, spec)?;
        }
        if let Some(c) = &volume.persistent_volume_claim {
            if c.claim_name.is_empty() {
                let f = format!("{field}.persistentVolumeClaim.claimName");
                return Err(SpecError::new(f, "Required value"));
            }
        }
    }
    Ok(names)
}

fn validate_empty_dir(field: &str, e: &EmptyDirVolumeSource) -> Result<(), SpecError> {
    if !["", "Memory"].contains(&e.medium.as_str()) {
        let message = format!("{:?}: supported values: \"\", \"Memory\"", e.medium);
        return Err(SpecError::new(format!("{field}.medium"), message));
    }
    if let Some(q) = &e.size_limit {
        q.bytes()
            .map_err(|err| err.at(&format!("{field}.sizeLimit")))?;
    }
    Ok(())
}

fn validate_host_path(field: &str, h: &HostPathVolumeSource) -> Result<(), SpecError> {
    if h.path.is_empty() {
        return Err(SpecError::new(format!("{field}.path"), "must be non-empty"));
    }
    if Path::new(&h.path)
        .components()
        .any(|c| c == Component::ParentDir)
    {
        return Err(SpecError::new(
            format!("{field}.path"),
            "must not contain '..'",
        ));
    }
    let kind = h.kind.as_deref().unwrap_or("");
    if !HOST_PATH_TYPES.contains(&kind) {
        let message = format!("{kind:?}: supported values: {HOST_PATH_TYPES:?}");
        return Err(SpecError::new(format!("{field}.type"), message));
    }
    Ok(())
}

/// A file mode within 0..=0777.
fn check_mode(field: &str, mode: Option<i32>) -> Result<(), SpecError> {
    if mode.is_some_and(|m| !(0..=0o777).contains(&m)) {
        let message = "must be a number between 0 and 0777 (octal), both inclusive";
        return Err(SpecError::new(field, message));
    }
    Ok(())
}

/// A file's path inside its volume: relative, without `..`.
fn check_file_path(field: &str, path: &str) -> Result<(), SpecError> {
    if path.is_empty() || path.starts_with("..") {
        return Err(SpecError::new(field, "must not start with '..'"));
    }
    check_sub_path(field, path)
}

/// `items` paths relative without `..`, modes within 0..=0777.
fn validate_items(
    field: &str,
    items: &[KeyToPath],
    default_mode: Option<i32>,
) -> Result<(), SpecError> {
    check_mode(&format!("{field}.defaultMode"), default_mode)?;
    for (i, item) in items.iter().enumerate() {
        let f = format!("{field}.items[{i}]");
        if item.key.is_empty() {
            return Err(SpecError::new(format!("{f}.key"), "Required value"));
        }
        check_file_path(&format!("{f}.path"), &item.path)?;
        check_mode(&format!("{f}.mode"), item.mode)?;
    }
    Ok(())
}

/// A downwardAPI volume's or projection's `items`: a path, exactly one of `fieldRef` (a
/// metadata field) and `resourceFieldRef` (a resource of a named container of the pod).
fn validate_downward_items(
    field: &str,
    items: &[DownwardApiVolumeFile],
    spec: &PodSpec,
) -> Result<(), SpecError> {
    for (i, item) in items.iter().enumerate() {
        let f = format!("{field}.items[{i}]");
        check_file_path(&format!("{f}.path"), &item.path)?;
        check_mode(&format!("{f}.mode"), item.mode)?;
        match (&item.field_ref, &item.resource_field_ref) {
            (Some(r), None) => {
                let path = r.field_path.as_str();
                if !VOLUME_FIELD_PATHS.contains(&path) && subscripted_field(path).is_none() {
                    let message = format!("{path:?}: supported values: {VOLUME_FIELD_PATHS:?}, metadata.labels['<KEY>'], metadata.annotations['<KEY>']");
                    return Err(SpecError::new(format!("{f}.fieldRef.fieldPath"), message));
                }
                if r.api_version.as_deref().is_some_and(|v| v != "v1") {
                    let message = "only \"v1\" is supported";
                    return Err(SpecError::new(format!("{f}.fieldRef.apiVersion"), message));
                }
            }
            (None, Some(r)) => {
                let rf = format!("{f}.resourceFieldRef");
                let name = r.container_name.as_deref().unwrap_or("");
                if name.is_empty() {
                    return Err(SpecError::new(
                        format!("{rf}.containerName"),
                        "Required value",
                    ));
                }
                if !spec.all_containers().any(|(_, c)| c.name == name) {
                    let message = format!("no container named {name:?} in the pod");
                    return Err(SpecError::new(format!("{rf}.containerName"), message));
                }
                if !RESOURCE_FIELDS.contains(&r.resource.as_str()) {
                    let message =
                        format!("{:?}: supported values: {RESOURCE_FIELDS:?}", r.resource);
                    return Err(SpecError::new(format!("{rf}.resource"), message));
                }
                if let Some(d) = &r.divisor {
                    d.milli_value()
                        .map_err(|e| e.at(&format!("{rf}.divisor")))?;
                }
            }
            (None, None) => {
                let message = "must specify one of: `fieldRef` or `resourceFieldRef`";
                return Err(SpecError::new(f, message));
            }
            (Some(_), Some(_)) => {
                let message = "fieldRef and resourceFieldRef can not be specified simultaneously";
                return Err(SpecError::new(f, message));
            }
        }
    }
    Ok(())
}

/// A projected volume: each source exactly one of configMap, secret, downwardAPI.
fn validate_projected(
    field: &str,
    p: &ProjectedVolumeSource,
    spec: &PodSpec,
) -> Result<(), SpecError> {
    check_mode(&format!("{field}.defaultMode"), p.default_mode)?;
    for (i, source) in p.sources.iter().enumerate() {
        let f = format!("{field}.sources[{i}]");
        let set = [
            source.config_map.is_some(),
            source.secret.is_some(),
            source.downward_api.is_some(),
            source.service_account_token.is_some(),
        ];
        if set.iter().filter(|s| **s).count() != 1 {
            let message = "exactly one of configMap, secret, downwardAPI or serviceAccountToken must be specified";
            return Err(SpecError::new(f, message));
        }
        for (name, o) in [
            ("configMap", &source.config_map),
            ("secret", &source.secret),
        ] {
            if let Some(o) = o {
                let of = format!("{f}.{name}");
                if o.name.is_empty() {
                    return Err(SpecError::new(format!("{of}.name"), "Required value"));
                }
                validate_items(&of, &o.items, None)?;
            }
        }
        if let Some(d) = &source.downward_api {
            validate_downward_items(&format!("{f}.downwardAPI"), &d.items, spec)?;
        }
        if let Some(t) = &source.service_account_token {
            let tf = format!("{f}.serviceAccountToken");
            if t.path.is_empty() {
                return Err(SpecError::new(format!("{tf}.path"), "Required value"));
            }
            check_file_path(&format!("{tf}.path"), &t.path)?;
            let seconds = t.expiration_seconds();
            let why = if seconds < 600 {
                "may not specify a duration less than 10 minutes"
            } else if seconds > 1 << 32 {
                "may not specify a duration larger than 2^32 seconds"
            } else {
                ""
            };
            if !why.is_empty() {
                let message = format!("Invalid value: {seconds}: {why}");
                return Err(SpecError::new(format!("{tf}.expirationSeconds"), message));
            }
        }
    }
    Ok(())
}

/// A container's `volumeMounts`: each names a volume, has a unique absolute `mountPath`, and a
/// `subPath` that is relative without `..`.
pub(super) fn validate_volume_mounts(
    path: &str,
    c: &Container,
    volumes: &BTreeSet<&str>,
) -> Result<(), SpecError> {
    let mut paths = BTreeSet::new();
    for (i, mount) in c.volume_mounts.iter().enumerate() {
        let field = format!("{path}.volumeMounts[{i}]");
        if !volumes.contains(mount.name.as_str()) {
            let message = format!("no volume named {:?} in spec.volumes", mount.name);
            return Err(SpecError::new(format!("{field}.name"), message));
        }
        if mount.mount_path.is_empty() {
            return Err(SpecError::new(
                format!("{field}.mountPath"),
                "must be non-empty",
            ));
        }
        if !mount.mount_path.starts_with('/') {
            let message = "must be an absolute path (the container runtime requires one)";
            return Err(SpecError::new(format!("{field}.mountPath"), message));
        }
        if !paths.insert(mount.mount_path.as_str()) {
            return Err(SpecError::new(
                format!("{field}.mountPath"),
                "must be unique",
            ));
        }
        if let Some(sub) = &mount.sub_path {
            check_sub_path(&format!("{field}.subPath"), sub)?;
        }
    }
    Ok(())
}

/// The API server's rule for `subPath`: relative, and no `..` component.
fn check_sub_path(field: &str, sub: &str) -> Result<(), SpecError> {
    let p = Path::new(sub);
    if p.is_absolute() {
        return Err(SpecError::new(field, "must be a relative path"));
    }
    if p.components().any(|c| c == Component::ParentDir) {
        return Err(SpecError::new(field, "must not contain '..'"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::spec::parse_pod;

    fn error_of(volume: &str) -> String {
        let yaml = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers: [{{name: c, image: x}}]\n  volumes:\n  - {volume}\n");
        parse_pod(&yaml).expect_err("refused").to_string()
    }

    #[test]
    fn downward_and_projected_volumes_are_checked_and_tokens_refused_by_field() {
        // A static pod has no API to ask for a token.
        let err = error_of("{name: t, projected: {sources: [{serviceAccountToken: {path: token, audience: api}}]}}");
        assert!(
            err.contains("spec.volumes[0].projected.sources[0].serviceAccountToken"),
            "{err}"
        );
        let api_pod = |volume: &str| {
            let yaml = format!("{{apiVersion: v1, kind: Pod, metadata: {{name: p}}, spec: {{nodeName: n1, containers: [{{name: c, image: x}}], volumes: [{volume}]}}}}");
            let value: serde_json::Value = serde_yaml::from_str(&yaml).expect("yaml");
            crate::spec::pod_from_api(value, "n1")
        };
        api_pod("{name: t, projected: {sources: [{serviceAccountToken: {path: token, expirationSeconds: 600}}]}}")
            .expect("a token projection of an API pod");
        let err = api_pod("{name: t, projected: {sources: [{serviceAccountToken: {path: token, expirationSeconds: 599}}]}}")
            .expect_err("too short");
        assert_eq!(
            err.field,
            "spec.volumes[0].projected.sources[0].serviceAccountToken.expirationSeconds"
        );
        let err =
            api_pod("{name: t, projected: {sources: [{serviceAccountToken: {audience: a}}]}}")
                .expect_err("no path");
        assert_eq!(
            err.field,
            "spec.volumes[0].projected.sources[0].serviceAccountToken.path"
        );
        let err = error_of(
            "{name: d, downwardAPI: {items: [{path: m, resourceFieldRef: {resource: limits.cpu}}]}}",
        );
        assert!(
            err.contains("spec.volumes[0].downwardAPI.items[0].resourceFieldRef.containerName"),
            "{err}"
        );
        let err = error_of(
            "{name: d, downwardAPI: {items: [{path: n, fieldRef: {fieldPath: spec.nodeName}}]}}",
        );
        assert!(
            err.contains("spec.volumes[0].downwardAPI.items[0].fieldRef.fieldPath"),
            "{err}"
        );
        let err = error_of(
            "{name: d, downwardAPI: {items: [{path: ../n, fieldRef: {fieldPath: metadata.name}}]}}",
        );
        assert!(
            err.contains("spec.volumes[0].downwardAPI.items[0].path"),
            "{err}"
        );
        let err = error_of("{name: p, projected: {sources: [{}]}}");
        assert!(
            err.contains("spec.volumes[0].projected.sources[0]"),
            "{err}"
        );
    }
}
