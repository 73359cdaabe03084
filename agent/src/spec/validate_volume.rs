//! The API server's checks of `spec.volumes` and of a container's `volumeMounts`, each
//! failure naming its field. Pure.

use std::collections::BTreeSet;
use std::path::{Component, Path};

use super::error::SpecError;
use super::pod::{Container, PodSpec};
use super::volume::{EmptyDirVolumeSource, HostPathVolumeSource, KeyToPath, HOST_PATH_TYPES};

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

/// `items` paths relative without `..`, modes within 0..=0777.
fn validate_items(
    field: &str,
    items: &[KeyToPath],
    default_mode: Option<i32>,
) -> Result<(), SpecError> {
    let bad_mode = |m: Option<i32>| m.is_some_and(|m| !(0..=0o777).contains(&m));
    if bad_mode(default_mode) {
        let message = "must be a number between 0 and 0777 (octal), both inclusive";
        return Err(SpecError::new(format!("{field}.defaultMode"), message));
    }
    for (i, item) in items.iter().enumerate() {
        let f = format!("{field}.items[{i}]");
        if item.key.is_empty() {
            return Err(SpecError::new(format!("{f}.key"), "Required value"));
        }
        if item.path.is_empty() || item.path.starts_with("..") {
            return Err(SpecError::new(
                format!("{f}.path"),
                "must not start with '..'",
            ));
        }
        check_sub_path(&format!("{f}.path"), &item.path)?;
        if bad_mode(item.mode) {
            let message = "must be a number between 0 and 0777 (octal), both inclusive";
            return Err(SpecError::new(format!("{f}.mode"), message));
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
