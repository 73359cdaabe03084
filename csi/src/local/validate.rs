//! Request checks shared by the services: required fields, absolute paths, the volume
//! capabilities this driver serves (filesystem access, ext4, single-node modes). Each refusal
//! is INVALID_ARGUMENT naming the field, as the spec asks.

use std::path::PathBuf;

use tonic::Status;

use crate::proto::{volume_capability, VolumeCapability};

use volume_capability::access_mode::Mode;

/// A REQUIRED string field.
pub fn required<'a>(field: &str, value: &'a str) -> Result<&'a str, Status> {
    if value.is_empty() {
        return Err(Status::invalid_argument(format!("{field} is required")));
    }
    Ok(value)
}

/// A REQUIRED absolute path.
pub fn abs_path(field: &str, value: &str) -> Result<PathBuf, Status> {
    let path = PathBuf::from(required(field, value)?);
    if !path.is_absolute() {
        return Err(Status::invalid_argument(format!(
            "{field} {value:?} is not an absolute path"
        )));
    }
    Ok(path)
}

/// The mount flags of a capability this driver serves, or why it does not.
pub fn capability(field: &str, cap: Option<&VolumeCapability>) -> Result<Vec<String>, Status> {
    let cap = cap.ok_or_else(|| Status::invalid_argument(format!("{field} is required")))?;
    let mount = match &cap.access_type {
        Some(volume_capability::AccessType::Mount(m)) => m,
        Some(volume_capability::AccessType::Block(_)) => {
            return Err(Status::invalid_argument(format!(
                "{field}.block: this driver serves filesystem (mount) volumes only"
            )))
        }
        None => {
            return Err(Status::invalid_argument(format!(
                "{field}.access_type is required"
            )))
        }
    };
    if !matches!(mount.fs_type.as_str(), "" | "ext4") {
        return Err(Status::invalid_argument(format!(
            "{field}.mount.fs_type {:?}: this driver makes ext4 filesystems only",
            mount.fs_type
        )));
    }
    let mode = cap
        .access_mode
        .as_ref()
        .ok_or_else(|| Status::invalid_argument(format!("{field}.access_mode is required")))?
        .mode;
    match Mode::try_from(mode) {
        Ok(
            Mode::SingleNodeWriter
            | Mode::SingleNodeReaderOnly
            | Mode::SingleNodeSingleWriter
            | Mode::SingleNodeMultiWriter,
        ) => Ok(mount.mount_flags.clone()),
        Ok(other) => Err(Status::invalid_argument(format!(
            "{field}.access_mode {}: volumes of this driver live on one node",
            other.as_str_name()
        ))),
        Err(_) => Err(Status::invalid_argument(format!(
            "{field}.access_mode {mode} is not a CSI access mode"
        ))),
    }
}

/// Validates every capability of a list that must not be empty.
pub fn capabilities(field: &str, caps: &[VolumeCapability]) -> Result<(), Status> {
    if caps.is_empty() {
        return Err(Status::invalid_argument(format!("{field} is required")));
    }
    for (i, cap) in caps.iter().enumerate() {
        capability(&format!("{field}[{i}]"), Some(cap))?;
    }
    Ok(())
}

/// Refuses a non-empty map the driver does not honour (secrets, parameters), naming a key.
pub fn unsupported_map(
    field: &str,
    map: &std::collections::HashMap<String, String>,
    allowed: impl Fn(&str) -> bool,
) -> Result<(), Status> {
    let mut keys: Vec<&String> = map.keys().filter(|k| !allowed(k)).collect();
    keys.sort();
    match keys.first() {
        None => Ok(()),
        Some(key) => Err(Status::invalid_argument(format!(
            "{field}[{key:?}] is not supported by this driver"
        ))),
    }
}

/// An internal failure (a tool, the state directory, a mount call) as INTERNAL.
pub fn internal(what: impl std::fmt::Display) -> Status {
    Status::internal(what.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    fn cap(access_type: Option<volume_capability::AccessType>, mode: i32) -> VolumeCapability {
        VolumeCapability {
            access_type,
            access_mode: Some(volume_capability::AccessMode { mode }),
        }
    }

    fn mount(fs_type: &str) -> Option<volume_capability::AccessType> {
        Some(volume_capability::AccessType::Mount(
            volume_capability::MountVolume {
                fs_type: fs_type.into(),
                mount_flags: vec!["noatime".into()],
            },
        ))
    }

    #[test]
    fn capabilities_this_driver_serves() {
        let ok = cap(mount("ext4"), Mode::SingleNodeWriter as i32);
        assert_eq!(capability("c", Some(&ok)).unwrap(), vec!["noatime"]);
        assert!(capability(
            "c",
            Some(&cap(mount(""), Mode::SingleNodeMultiWriter as i32))
        )
        .is_ok());
        for (bad, names) in [
            (cap(mount("xfs"), 1), "c.mount.fs_type"),
            (cap(None, 1), "c.access_type"),
            (
                cap(mount(""), Mode::MultiNodeMultiWriter as i32),
                "MULTI_NODE_MULTI_WRITER",
            ),
            (cap(mount(""), 99), "c.access_mode 99"),
            (
                cap(
                    Some(volume_capability::AccessType::Block(
                        volume_capability::BlockVolume {},
                    )),
                    1,
                ),
                "c.block",
            ),
        ] {
            let err = capability("c", Some(&bad)).unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument);
            assert!(err.message().contains(names), "{err:?} names {names}");
        }
        assert_eq!(
            capability("c", None).unwrap_err().code(),
            Code::InvalidArgument
        );
        assert_eq!(
            capabilities("cs", &[]).unwrap_err().code(),
            Code::InvalidArgument
        );
    }

    #[test]
    fn paths_and_maps() {
        assert!(abs_path("p", "/a").is_ok());
        assert_eq!(
            abs_path("p", "a").unwrap_err().code(),
            Code::InvalidArgument
        );
        assert_eq!(abs_path("p", "").unwrap_err().code(), Code::InvalidArgument);
        let map =
            std::collections::HashMap::from([("csi.storage.k8s.io/pv/name".into(), "x".into())]);
        assert!(
            unsupported_map("parameters", &map, |k| k.starts_with("csi.storage.k8s.io/")).is_ok()
        );
        let err = unsupported_map("secrets", &map, |_| false).unwrap_err();
        assert!(err.message().contains("csi.storage.k8s.io/pv/name"));
    }
}
