//! `configMap` and `secret` volumes: the object's keys (all, or `items` with their paths and
//! modes; `defaultMode` else 0644) written by the atomic writer, a secret's onto a tmpfs so it
//! never reaches the disk. An object not read yet, or that could not be read, leaves what is
//! there (on first setup: an error, retried); a missing object or key is kubelet's error unless
//! `optional`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::atomic_writer::{self, Payload};
use super::empty_dir::mount_tmpfs;
use super::host_mounts::is_mount_point;
use super::{volumes_dir, VolumeError};
use crate::config_source::{Lookup, ObjectKind};
use crate::spec::{KeyToPath, ObjectProjection, Volume, DEFAULT_FILE_MODE};

/// Reads an object of the pod's namespace.
pub type Objects<'a> = &'a dyn Fn(ObjectKind, &str) -> Lookup;

/// A configMap or secret volume's reference.
pub(super) struct ConfigRef<'a> {
    kind: ObjectKind,
    name: &'a str,
    items: &'a [KeyToPath],
    default_mode: Option<i32>,
    optional: bool,
}

impl<'a> ConfigRef<'a> {
    /// A projected volume's configMap or secret source, with the volume's `defaultMode`.
    pub(super) fn projection(
        kind: ObjectKind,
        o: &'a ObjectProjection,
        default_mode: Option<i32>,
    ) -> Self {
        ConfigRef {
            kind,
            name: &o.name,
            items: &o.items,
            default_mode,
            optional: o.optional == Some(true),
        }
    }
}

pub(super) fn config_ref(v: &Volume) -> Option<ConfigRef<'_>> {
    if let Some(c) = &v.config_map {
        return Some(ConfigRef {
            kind: ObjectKind::ConfigMap,
            name: &c.name,
            items: &c.items,
            default_mode: c.default_mode,
            optional: c.optional == Some(true),
        });
    }
    v.secret.as_ref().map(|s| ConfigRef {
        kind: ObjectKind::Secret,
        name: &s.secret_name,
        items: &s.items,
        default_mode: s.default_mode,
        optional: s.optional == Some(true),
    })
}

/// `<pod dir>/volumes/kubernetes.io~configmap/<name>` or `...~secret/<name>`.
pub(super) fn dir_of(pod_dir: &Path, v: &Volume, r: &ConfigRef<'_>) -> PathBuf {
    let plugin = match r.kind {
        ObjectKind::ConfigMap => "kubernetes.io~configmap",
        ObjectKind::Secret => "kubernetes.io~secret",
    };
    volumes_dir(pod_dir).join(plugin).join(&v.name)
}

/// The files the volume should show; `None` when the object is not known now.
pub(super) fn payload(
    r: &ConfigRef<'_>,
    objects: Objects<'_>,
) -> Result<Option<BTreeMap<String, Payload>>, VolumeError> {
    let data = match objects(r.kind, r.name) {
        Lookup::Pending | Lookup::Failed(_) => return Ok(None),
        Lookup::Absent if r.optional => return Ok(Some(BTreeMap::new())),
        Lookup::Absent => {
            return Err(VolumeError::set_up(
                "",
                format!("{} {:?} not found", r.kind.lower(), r.name),
            ))
        }
        Lookup::Present(d) => d,
    };
    let mode = |m: Option<i32>| m.or(r.default_mode).unwrap_or(DEFAULT_FILE_MODE) as u32 & 0o777;
    let mut out = BTreeMap::new();
    if r.items.is_empty() {
        for (k, v) in data.iter() {
            out.insert(
                k.clone(),
                Payload {
                    data: v.clone(),
                    mode: mode(None),
                },
            );
        }
        return Ok(Some(out));
    }
    for item in r.items {
        match data.get(&item.key) {
            Some(v) => {
                out.insert(
                    item.path.clone(),
                    Payload {
                        data: v.clone(),
                        mode: mode(item.mode),
                    },
                );
            }
            None if r.optional => {}
            None => {
                let what = match r.kind {
                    ObjectKind::ConfigMap => "configmap references non-existent config key",
                    ObjectKind::Secret => "references non-existent secret key",
                };
                return Err(VolumeError::set_up("", format!("{what}: {}", item.key)));
            }
        }
    }
    Ok(Some(out))
}

/// First setup: the directory (a tmpfs for a secret) and the content, which must be known.
pub(super) fn set_up(
    dir: &Path,
    r: &ConfigRef<'_>,
    objects: Objects<'_>,
) -> Result<(), VolumeError> {
    std::fs::create_dir_all(dir).map_err(|e| VolumeError::io("mkdir", dir, e))?;
    if r.kind == ObjectKind::Secret && !is_mount_point(dir)? {
        mount_tmpfs(dir, None, 0o755)?;
    }
    match payload(r, objects)? {
        Some(files) => atomic_writer::write(dir, &files).map(|_| ()),
        None if std::fs::symlink_metadata(dir.join("..data")).is_ok() => Ok(()),
        None => Err(VolumeError::set_up(
            "",
            format!(
                "{} {:?} could not be read from the API yet",
                r.kind.title(),
                r.name
            ),
        )),
    }
}

/// An update: rewrites the content when it is known and changed; returns whether it did.
pub(super) fn refresh(
    dir: &Path,
    r: &ConfigRef<'_>,
    objects: Objects<'_>,
) -> Result<bool, VolumeError> {
    match payload(r, objects)? {
        Some(files) => atomic_writer::write(dir, &files),
        None => Ok(false),
    }
}
