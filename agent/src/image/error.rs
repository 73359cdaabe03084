//! The image store's one error type. Every variant names the operation and the object it
//! was applied to (a blob digest, a file path, a tar entry, a reference). This file must never
//! grow a catch-all `Other(io::Error)`: add a variant that says what failed instead.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while importing, resolving or removing an image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A filesystem operation on a path failed.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Taking the store lock failed.
    #[error("locking image store {path}: {source}")]
    Lock {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    /// No image is stored under this reference.
    #[error("image {reference} not found")]
    NotFound { reference: String },
    /// The reference is not a valid image reference.
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    /// A digest string is not `sha256:<64 lowercase hex>`.
    #[error("invalid digest {digest:?} in {context}: only sha256:<64 hex> is supported")]
    InvalidDigest { digest: String, context: String },
    /// A blob's content does not hash to its digest.
    #[error("blob {expected} from {path}: content has digest {actual}")]
    DigestMismatch {
        expected: String,
        actual: String,
        path: PathBuf,
    },
    /// A blob's length differs from the size its descriptor claims.
    #[error("blob {digest} from {path}: descriptor says {expected} bytes, content has {actual}")]
    SizeMismatch {
        digest: String,
        expected: u64,
        actual: u64,
        path: PathBuf,
    },
    /// A JSON blob (index, manifest, config) is larger than the store will parse.
    #[error("blob {digest} is {size} bytes; JSON documents over {limit} bytes are refused")]
    BlobTooLarge {
        digest: String,
        size: u64,
        limit: u64,
    },
    /// A blob the image needs is not in the source (or in the store).
    #[error("blob {digest} is missing: expected at {path}")]
    BlobMissing { digest: String, path: PathBuf },
    /// A JSON document (index, manifest, config, refs file) could not be parsed.
    #[error("parsing {what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    /// A manifest, index or layer has a media type the store cannot handle.
    #[error("{what} {digest} has unsupported media type {media_type}")]
    UnsupportedMediaType {
        what: &'static str,
        digest: String,
        media_type: String,
    },
    /// An image index lists no manifest for linux/amd64.
    #[error("image index {digest} has no manifest for linux/amd64")]
    NoMatchingPlatform { digest: String },
    /// An image in the source has no usable name.
    #[error("image {digest} in {path}: {problem}")]
    MissingImageName {
        digest: String,
        path: PathBuf,
        problem: String,
    },
    /// The import source is neither an OCI layout nor a docker archive, or is malformed.
    #[error("importing {path}: {problem}")]
    BadSource { path: PathBuf, problem: String },
    /// A manifest's layer list and its config's diff_ids disagree in length.
    #[error("manifest {manifest}: {layers} layers but config lists {diff_ids} diff_ids")]
    LayerCountMismatch {
        manifest: String,
        layers: usize,
        diff_ids: usize,
    },
    /// A layer's uncompressed content does not hash to the config's diff_id.
    #[error(
        "layer {layer}: uncompressed content has digest {actual}, config diff_id is {expected}"
    )]
    DiffIdMismatch {
        layer: String,
        expected: String,
        actual: String,
    },
    /// A tar entry would write outside the layer directory or through a symlink.
    #[error("refusing tar entry {entry:?} in layer {layer}: {reason}")]
    UnsafeEntry {
        layer: String,
        entry: String,
        reason: &'static str,
    },
    /// Reading or applying a tar entry failed.
    #[error("{action} tar entry {entry:?} in {archive}: {source}")]
    TarEntry {
        action: &'static str,
        archive: String,
        entry: String,
        #[source]
        source: io::Error,
    },
    /// Reading the tar stream itself failed (outside any entry).
    #[error("reading tar archive {archive}: {source}")]
    Tar {
        archive: String,
        #[source]
        source: io::Error,
    },
    /// A kernel call on a path failed (mknod, utimensat).
    #[error("{call} {path}: {source}")]
    Syscall {
        call: &'static str,
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    /// A registry request failed; `message` is the registry's (or the transport's) answer.
    #[error("pulling {reference}: {action}: {message}")]
    Registry {
        action: String,
        reference: String,
        message: String,
    },
    /// The store on disk is inconsistent (e.g. a referenced layer directory is gone).
    #[error("image store is inconsistent at {path}: {problem}")]
    StoreCorrupt { path: PathBuf, problem: String },
}

impl ImageError {
    /// Shorthand for [`ImageError::Io`]; use as `.map_err(io_err("reading", &path))`.
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        ImageError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// Builds a closure mapping an `io::Error` to [`ImageError::Io`] for `action` on `path`.
pub(crate) fn io_err<'a>(
    action: &'static str,
    path: &'a std::path::Path,
) -> impl FnOnce(io::Error) -> ImageError + 'a {
    move |source| ImageError::io(action, path, source)
}
