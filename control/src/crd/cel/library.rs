//! Placeholder: Kubernetes' CEL extension functions (filled in next).

/// Registers Kubernetes' CEL extension functions on a root context.
pub fn register(_ctx: &mut cel::Context<'_>) {}

/// Every function a rule may call.
pub const FUNCTIONS: &[&str] = &[
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "string",
    "int",
    "uint",
    "double",
    "bytes",
    "duration",
    "timestamp",
    "has",
    "all",
    "exists",
    "exists_one",
    "map",
    "filter",
];
