//! Safe extraction of one layer tarball into one directory, converting OCI whiteouts to the
//! overlayfs format (`.wh.NAME` -> 0/0 char device, `.wh..wh..opq` -> `trusted.overlay.opaque=y`).
//!
//! This file must never write outside the destination directory and never write through a
//! symlink: every entry path is checked component by component with `symlink_metadata`, entries
//! with `..` or absolute paths are refused, symlinks are created as symlinks but never followed,
//! and files are opened with `O_CREAT|O_EXCL|O_NOFOLLOW`. The destination must be a fresh
//! directory only this process writes to (the store's scratch area), which is what makes the
//! path-based checks sufficient. It never uses `tar::Entry::unpack_in`.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use flate2::read::MultiGzDecoder;
use nix::sys::stat::{mknod, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use tar::EntryType;

use super::digest::HashingReader;
use super::error::{io_err, ImageError};

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_WHITEOUT: &[u8] = b".wh..wh..opq";
const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";
const PAX_XATTR_PREFIX: &str = "SCHILY.xattr.";
const IMPLICIT_DIR_MODE: u32 = 0o755;

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    /// Zstandard: every frame of the blob, skippable frames (zstd:chunked's) skipped.
    Zstd,
}

/// Unpacks the layer blob at `blob` into the existing empty directory `dest` and returns the
/// `sha256:` digest of the uncompressed tar stream (the layer's diff id). `layer` names the
/// layer in errors.
pub(crate) fn unpack_layer(
    blob: &Path,
    compression: Compression,
    dest: &Path,
    layer: &str,
) -> Result<String, ImageError> {
    let file = File::open(blob).map_err(io_err("opening layer blob", blob))?;
    let reader: Box<dyn Read> = match compression {
        Compression::None => Box::new(BufReader::new(file)),
        Compression::Gzip => Box::new(MultiGzDecoder::new(BufReader::new(file))),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(file).map_err(io_err("starting zstd on", blob))?,
        ),
    };
    let mut archive = tar::Archive::new(HashingReader::new(reader));
    let tar_err = |source| ImageError::Tar {
        archive: layer.to_owned(),
        source,
    };
    let mut dir_times = Vec::new();
    for entry in archive.entries().map_err(tar_err)? {
        let mut entry = entry.map_err(tar_err)?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let unpacker = EntryUnpacker {
            dest,
            layer,
            name: &name,
        };
        unpacker.apply(&mut entry, &mut dir_times)?;
    }
    // Directory times last: creating children updated them. Re-check each path, since a later
    // entry may have replaced a parent with a symlink.
    for (rel, mtime) in dir_times.iter().rev() {
        if let Some(path) = existing_dir_without_symlinks(dest, rel) {
            set_mtime(&path, *mtime)?;
        }
    }
    let (diff_id, _) = archive.into_inner().finish().map_err(tar_err)?;
    Ok(diff_id)
}

/// One tar entry being applied to `dest`.
struct EntryUnpacker<'a> {
    dest: &'a Path,
    layer: &'a str,
    name: &'a str,
}

impl EntryUnpacker<'_> {
    fn unsafe_entry(&self, reason: &'static str) -> ImageError {
        ImageError::UnsafeEntry {
            layer: self.layer.to_owned(),
            entry: self.name.to_owned(),
            reason,
        }
    }

    fn entry_err(&self, action: &'static str) -> impl FnOnce(io::Error) -> ImageError + '_ {
        move |source| ImageError::TarEntry {
            action,
            archive: self.layer.to_owned(),
            entry: self.name.to_owned(),
            source,
        }
    }

    fn apply<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        dir_times: &mut Vec<(PathBuf, u64)>,
    ) -> Result<(), ImageError> {
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            EntryType::Char
                | EntryType::Block
                | EntryType::XGlobalHeader
                | EntryType::XHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        ) {
            return Ok(());
        }
        let rel = relative_path(&entry.path_bytes()).map_err(|r| self.unsafe_entry(r))?;
        let Some(file_name) = rel.file_name().map(|n| n.as_bytes().to_vec()) else {
            return Ok(()); // the layer root itself ("./"): nothing to create
        };
        let parent_rel = rel.parent().unwrap_or(Path::new(""));
        let parent = self.ensure_parent_dirs(parent_rel)?;

        if file_name.starts_with(WHITEOUT_PREFIX) {
            return self.apply_whiteout(&parent, parent_rel, &file_name);
        }
        let path = parent.join(OsStr::from_bytes(&file_name));
        let is_dir = kind == EntryType::Directory;
        self.clear_target(&path, is_dir)?;
        match kind {
            EntryType::Directory => {
                if !path.is_dir() {
                    fs::create_dir(&path).map_err(self.entry_err("creating directory"))?;
                }
                dir_times.push((rel.clone(), entry.header().mtime().unwrap_or(0)));
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| self.unsafe_entry("symlink has no target"))?;
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), &path)
                    .map_err(self.entry_err("creating symlink"))?;
            }
            EntryType::Link => return self.create_hard_link(entry, &path),
            EntryType::Fifo => {
                nix::unistd::mkfifo(&path, Mode::from_bits_truncate(0o600)).map_err(|source| {
                    ImageError::Syscall {
                        call: "mkfifo",
                        path: path.clone(),
                        source,
                    }
                })?;
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.write_file(entry, &path)?
            }
            _ => return Ok(()), // volume labels, multi-volume parts: not filesystem content
        }
        self.apply_metadata(entry, &path, kind)
    }

    /// Walks `parent_rel` under `dest`, creating missing directories and refusing symlinks and
    /// non-directories. Returns the absolute parent path.
    fn ensure_parent_dirs(&self, parent_rel: &Path) -> Result<PathBuf, ImageError> {
        let mut cur = self.dest.to_path_buf();
        for component in parent_rel.components() {
            cur.push(component);
            match fs::symlink_metadata(&cur) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(
                        self.unsafe_entry("a parent path component is a symlink (symlink escape)")
                    )
                }
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(self.unsafe_entry("a parent path component is not a directory"))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&cur).map_err(self.entry_err("creating parent directory"))?;
                    fs::set_permissions(&cur, Permissions::from_mode(IMPLICIT_DIR_MODE))
                        .map_err(self.entry_err("setting parent directory mode"))?;
                }
                Err(e) => return Err(self.entry_err("inspecting parent directory")(e)),
            }
        }
        Ok(cur)
    }

    /// Removes whatever is at `path`, unless both it and the new entry are directories.
    fn clear_target(&self, path: &Path, new_is_dir: bool) -> Result<(), ImageError> {
        match fs::symlink_metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.entry_err("inspecting existing path")(e)),
            Ok(m) if m.is_dir() && new_is_dir => Ok(()),
            Ok(m) if m.is_dir() => {
                fs::remove_dir_all(path).map_err(self.entry_err("replacing directory"))
            }
            Ok(_) => fs::remove_file(path).map_err(self.entry_err("replacing existing file")),
        }
    }

    fn apply_whiteout(
        &self,
        parent: &Path,
        parent_rel: &Path,
        file_name: &[u8],
    ) -> Result<(), ImageError> {
        if file_name == OPAQUE_WHITEOUT {
            if parent_rel.as_os_str().is_empty() {
                return Ok(()); // an opaque layer root hides nothing overlayfs can express
            }
            return xattr::set(parent, OVERLAY_OPAQUE_XATTR, b"y")
                .map_err(self.entry_err("marking directory opaque"));
        }
        let hidden = &file_name[WHITEOUT_PREFIX.len()..];
        if hidden.starts_with(WHITEOUT_PREFIX) {
            return Ok(()); // other aufs metadata (.wh..wh.plnk, ...): not content
        }
        if hidden.is_empty() || hidden == b"." || hidden == b".." {
            return Err(self.unsafe_entry("whiteout names no file"));
        }
        let path = parent.join(OsStr::from_bytes(hidden));
        self.clear_target(&path, false)?;
        mknod(&path, SFlag::S_IFCHR, Mode::empty(), 0).map_err(|source| ImageError::Syscall {
            call: "mknod whiteout",
            path,
            source,
        })
    }

    fn create_hard_link<R: Read>(
        &self,
        entry: &tar::Entry<'_, R>,
        path: &Path,
    ) -> Result<(), ImageError> {
        let target = entry
            .link_name_bytes()
            .ok_or_else(|| self.unsafe_entry("hard link has no target"))?;
        let target_rel = relative_path(&target)
            .map_err(|_| self.unsafe_entry("hard link target is absolute or has a .. component"))?;
        if target_rel.as_os_str().is_empty() {
            return Err(self.unsafe_entry("hard link target is empty"));
        }
        let source = self.dest.join(&target_rel);
        let parent_ok = target_rel
            .parent()
            .is_none_or(|p| existing_dir_without_symlinks(self.dest, p).is_some());
        let meta = fs::symlink_metadata(&source);
        match meta {
            Ok(m) if parent_ok && !m.is_dir() => {
                fs::hard_link(&source, path).map_err(self.entry_err("creating hard link"))
            }
            _ => Err(self.unsafe_entry(
                "hard link target is not a file in this layer (or is reached through a symlink)",
            )),
        }
    }

    fn write_file<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        path: &Path,
    ) -> Result<(), ImageError> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(self.entry_err("creating file"))?;
        io::copy(entry, &mut file).map_err(self.entry_err("writing file"))?;
        Ok(())
    }

    /// Owner, mode, xattrs and (for non-directories) mtime, in that order: chown clears
    /// setuid bits and file capabilities, so it goes first.
    fn apply_metadata<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        path: &Path,
        kind: EntryType,
    ) -> Result<(), ImageError> {
        let header = entry.header();
        let owner_err = || self.unsafe_entry("uid or gid does not fit in 32 bits");
        let uid = header
            .uid()
            .ok()
            .and_then(|u| u32::try_from(u).ok())
            .ok_or_else(owner_err)?;
        let gid = header
            .gid()
            .ok()
            .and_then(|g| u32::try_from(g).ok())
            .ok_or_else(owner_err)?;
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let mtime = header.mtime().unwrap_or(0);
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))
            .map_err(self.entry_err("changing owner"))?;
        if kind != EntryType::Symlink {
            fs::set_permissions(path, Permissions::from_mode(mode))
                .map_err(self.entry_err("setting mode"))?;
        }
        self.apply_xattrs(entry, path)?;
        if kind != EntryType::Directory {
            set_mtime(path, mtime)?;
        }
        Ok(())
    }

    /// Applies `SCHILY.xattr.*` PAX records for `user.*` and `security.capability` only: a
    /// layer must not be able to set `trusted.overlay.*` and steer overlayfs.
    fn apply_xattrs<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        path: &Path,
    ) -> Result<(), ImageError> {
        let Some(extensions) = entry
            .pax_extensions()
            .map_err(self.entry_err("reading PAX headers"))?
        else {
            return Ok(());
        };
        for ext in extensions.flatten() {
            let Some(name) = ext
                .key()
                .ok()
                .and_then(|k| k.strip_prefix(PAX_XATTR_PREFIX))
            else {
                continue;
            };
            if !(name.starts_with("user.") || name == "security.capability") {
                continue;
            }
            match xattr::set(path, name, ext.value_bytes()) {
                Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {}
                other => other.map_err(self.entry_err("setting xattr"))?,
            }
        }
        Ok(())
    }
}

/// Turns a tar path into a relative path of normal components. `.` components are dropped;
/// absolute paths and `..` are refused.
fn relative_path(raw: &[u8]) -> Result<PathBuf, &'static str> {
    let mut out = PathBuf::new();
    for component in Path::new(OsStr::from_bytes(raw)).components() {
        match component {
            Component::Normal(c) => out.push(c),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return Err("path is absolute"),
            Component::ParentDir => return Err("path has a .. component"),
        }
    }
    Ok(out)
}

/// `dest/rel` if every component of `rel` exists and is a real directory (not a symlink).
fn existing_dir_without_symlinks(dest: &Path, rel: &Path) -> Option<PathBuf> {
    let mut cur = dest.to_path_buf();
    for component in rel.components() {
        cur.push(component);
        let meta = fs::symlink_metadata(&cur).ok()?;
        if !meta.is_dir() {
            return None;
        }
    }
    Some(cur)
}

/// Sets atime and mtime of `path` itself (never a symlink's target).
fn set_mtime(path: &Path, mtime: u64) -> Result<(), ImageError> {
    let ts = TimeSpec::new(i64::try_from(mtime).unwrap_or(i64::MAX), 0);
    utimensat(None, path, &ts, &ts, UtimensatFlags::NoFollowSymlink).map_err(|source| {
        ImageError::Syscall {
            call: "utimensat",
            path: path.to_path_buf(),
            source,
        }
    })
}
