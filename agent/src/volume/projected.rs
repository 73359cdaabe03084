//! `downwardAPI` and `projected` volumes: files written by the atomic writer like a configMap
//! volume's, from the pod's own fields and resources (resolved by the caller through
//! [`FieldValues`]) and, for a projected volume, from ConfigMaps and Secrets too, all its
//! sources in one directory (a tmpfs, as kubelet wraps it, since it may hold secrets), a
//! `serviceAccountToken` source's token (fetched by the caller) included.
//! A downwardAPI volume lives on the node's disk. Content that cannot be known now (an object
//! not read yet) leaves what is there; a path two sources both write is an error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::atomic_writer::{self, Payload};
use super::config_volume::{self, ConfigRef};
use super::empty_dir::mount_tmpfs;
use super::host_mounts::is_mount_point;
use super::{volumes_dir, Sources, VolumeError};
use crate::config_source::ObjectKind;
use crate::spec::{
    DownwardApiVolumeFile, ServiceAccountTokenProjection, Volume, DEFAULT_FILE_MODE,
};

/// Resolves one downwardAPI file's content: kubelet's text of the pod's field or resource.
pub type FieldValues<'a> = &'a dyn Fn(&DownwardApiVolumeFile) -> Result<Vec<u8>, String>;

/// The token of one `serviceAccountToken` source, `None` when none could be had now.
pub type TokenValues<'a> = &'a dyn Fn(&ServiceAccountTokenProjection) -> Option<Vec<u8>>;

/// Whether `v` is a downwardAPI or projected volume.
pub(super) fn is_file_projection(v: &Volume) -> bool {
    v.downward_api.is_some() || v.projected.is_some()
}

/// `<pod dir>/volumes/kubernetes.io~downward-api/<name>` or `...~projected/<name>`.
pub(super) fn dir_of(pod_dir: &Path, v: &Volume) -> PathBuf {
    let plugin = match v.projected {
        Some(_) => "kubernetes.io~projected",
        None => "kubernetes.io~downward-api",
    };
    volumes_dir(pod_dir).join(plugin).join(&v.name)
}

/// The files of the downwardAPI `items`.
fn downward_files(
    items: &[DownwardApiVolumeFile],
    default_mode: Option<i32>,
    fields: FieldValues<'_>,
) -> Result<BTreeMap<String, Payload>, VolumeError> {
    let mut out = BTreeMap::new();
    for item in items {
        let data = fields(item).map_err(|e| VolumeError::set_up("", e))?;
        let mode = item.mode.or(default_mode).unwrap_or(DEFAULT_FILE_MODE) as u32 & 0o777;
        out.insert(item.path.clone(), Payload { data, mode });
    }
    Ok(out)
}

/// The files the volume should show; `None` when an object it shows is not known now.
fn payload(
    v: &Volume,
    sources: Sources<'_>,
) -> Result<Option<BTreeMap<String, Payload>>, VolumeError> {
    if let Some(d) = &v.downward_api {
        return downward_files(&d.items, d.default_mode, sources.fields).map(Some);
    }
    let Some(p) = &v.projected else {
        return Ok(Some(BTreeMap::new()));
    };
    let mut out = BTreeMap::new();
    for source in &p.sources {
        let files = if let Some(d) = &source.downward_api {
            downward_files(&d.items, p.default_mode, sources.fields)?
        } else if let Some(t) = &source.service_account_token {
            let Some(data) = (sources.tokens)(t) else {
                return Ok(None);
            };
            // kubelet gives the token the volume's mode.
            let mode = p.default_mode.unwrap_or(DEFAULT_FILE_MODE) as u32 & 0o777;
            BTreeMap::from([(t.path.clone(), Payload { data, mode })])
        } else {
            let object = match (&source.config_map, &source.secret) {
                (Some(o), _) => ConfigRef::projection(ObjectKind::ConfigMap, o, p.default_mode),
                (None, Some(o)) => ConfigRef::projection(ObjectKind::Secret, o, p.default_mode),
                (None, None) => continue,
            };
            match config_volume::payload(&object, sources.objects)? {
                Some(files) => files,
                None => return Ok(None),
            }
        };
        for (path, file) in files {
            if out.contains_key(&path) {
                let message = format!("conflicting duplicate paths: {path:?}");
                return Err(VolumeError::set_up("", message));
            }
            out.insert(path, file);
        }
    }
    Ok(Some(out))
}

/// First setup: the directory (a tmpfs for a projected volume) and the content, which must be
/// known.
pub(super) fn set_up(dir: &Path, v: &Volume, sources: Sources<'_>) -> Result<(), VolumeError> {
    std::fs::create_dir_all(dir).map_err(|e| VolumeError::io("mkdir", dir, e))?;
    if v.projected.is_some() && !is_mount_point(dir)? {
        mount_tmpfs(dir, None, 0o755)?;
    }
    match payload(v, sources)? {
        Some(files) => atomic_writer::write(dir, &files).map(|_| ()),
        None if std::fs::symlink_metadata(dir.join("..data")).is_ok() => Ok(()),
        None => Err(VolumeError::set_up(
            "",
            "a ConfigMap, Secret or token of the projected volume could not be read from the API yet",
        )),
    }
}

/// An update: rewrites the content when it is known and changed; returns whether it did.
pub(super) fn refresh(dir: &Path, v: &Volume, sources: Sources<'_>) -> Result<bool, VolumeError> {
    match payload(v, sources)? {
        Some(files) => atomic_writer::write(dir, &files),
        None => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config_source::{Lookup, ObjectData};

    fn volume(yaml: &str) -> Volume {
        serde_yaml::from_str(yaml).expect("volume")
    }

    fn read(dir: &Path, name: &str) -> String {
        std::fs::read_to_string(dir.join(name)).expect(name)
    }

    #[test]
    fn projected_sources_share_one_directory_and_conflicts_are_errors() {
        let objects = |kind: ObjectKind, name: &str| match (kind, name) {
            (ObjectKind::ConfigMap, "cfg") => {
                let data: BTreeMap<String, Vec<u8>> = [("color".to_string(), b"blue".to_vec())]
                    .into_iter()
                    .collect();
                Lookup::Present(ObjectData::from(data))
            }
            (ObjectKind::Secret, "pending") => Lookup::Pending,
            _ => Lookup::Absent,
        };
        let fields = |f: &DownwardApiVolumeFile| Ok(format!("value of {}", f.path).into_bytes());
        let tokens = |t: &ServiceAccountTokenProjection| match t.audience.as_str() {
            "pending" => None,
            _ => Some(format!("token for {}", t.audience).into_bytes()),
        };
        let sources = Sources {
            objects: &objects,
            fields: &fields,
            tokens: &tokens,
        };
        let v = volume("{name: p, projected: {defaultMode: 256, sources: [{configMap: {name: cfg}}, {secret: {name: gone, optional: true}}, {downwardAPI: {items: [{path: name, fieldRef: {fieldPath: metadata.name}}]}}]}}");
        let dir = tempfile::tempdir().expect("tempdir");
        let files = payload(&v, sources).expect("payload").expect("known");
        assert!(atomic_writer::write(dir.path(), &files).expect("write"));
        assert_eq!(read(dir.path(), "color"), "blue");
        assert_eq!(read(dir.path(), "name"), "value of name");
        assert_eq!(files["color"].mode, 0o400);

        let v = volume(
            "{name: p, projected: {sources: [{configMap: {name: cfg}}, {configMap: {name: cfg}}]}}",
        );
        let err = payload(&v, sources).expect_err("conflict");
        assert!(
            err.to_string().contains("conflicting duplicate paths"),
            "{err}"
        );
        let v = volume("{name: p, projected: {defaultMode: 288, sources: [{configMap: {name: cfg}}, {serviceAccountToken: {path: t/token, audience: vault}}]}}");
        let files = payload(&v, sources).expect("payload").expect("known");
        assert_eq!(files["t/token"].data, b"token for vault");
        assert_eq!(files["t/token"].mode, 0o440);
        let v = volume("{name: p, projected: {sources: [{serviceAccountToken: {path: token, audience: pending}}]}}");
        assert!(payload(&v, sources).expect("pending").is_none());
        let v = volume("{name: p, projected: {sources: [{secret: {name: pending}}]}}");
        assert!(payload(&v, sources).expect("pending").is_none());
        let v = volume("{name: p, projected: {sources: [{secret: {name: gone}}]}}");
        let err = payload(&v, sources).expect_err("absent");
        assert!(
            err.to_string().contains("secret \"gone\" not found"),
            "{err}"
        );
    }
}
