//! Pod manifests (being written).
