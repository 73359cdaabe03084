//! Errors of the socket load balancer: each says which map, program, path or service it was
//! working on and what it was doing.

use std::{io, path::PathBuf};

use crate::service::ServiceKey;

/// Everything that can go wrong loading, attaching or programming the dataplane.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    /// The embedded object did not load (verifier, map creation, pinning by name).
    #[error("load eBPF object sock_lb.o (maps pinned under {dir}): {source}")]
    Load {
        dir: PathBuf,
        #[source]
        source: Box<aya::EbpfError>,
    },
    /// A program operation failed.
    #[error("{op} program {program}: {source}")]
    Program {
        program: &'static str,
        op: &'static str,
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
    /// A map operation failed (`op` says which, e.g. "insert", "open pinned").
    #[error("{op} map {map}: {source}")]
    Map {
        map: &'static str,
        op: &'static str,
        #[source]
        source: Box<aya::maps::MapError>,
    },
    /// The embedded object lacks a program (a build problem).
    #[error("program {0} is missing from sock_lb.o")]
    MissingProgram(&'static str),
    /// Pinning a program failed.
    #[error("pin {what} at {path}: {source}")]
    Pin {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: Box<aya::pin::PinError>,
    },
    /// A filesystem or raw bpf(2) call failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The requested map sizes make no sense.
    #[error("invalid map sizes: {0}")]
    InvalidSizes(String),
    /// This service cannot be programmed; other services are not affected.
    #[error("service {key}: {reason}")]
    InvalidService { key: ServiceKey, reason: String },
    /// Not written because an earlier write in the same batch failed.
    #[error("service {key}: not written, an earlier write to {map} in the same batch failed")]
    BatchAborted { key: ServiceKey, map: &'static str },
    /// A table is full.
    #[error("service {key}: {map} is full ({capacity} entries)")]
    Full {
        key: ServiceKey,
        map: &'static str,
        capacity: u32,
    },
}

impl DataplaneError {
    pub(crate) fn map(map: &'static str, op: &'static str, source: aya::maps::MapError) -> Self {
        Self::Map {
            map,
            op,
            source: Box::new(source),
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
