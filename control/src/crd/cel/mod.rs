//! CRD validation rules (`x-kubernetes-validations`) in CEL, as kube-apiserver runs them:
//! checked when a CRD is written (`check`: compile errors, unknown functions, messages,
//! reasons, field paths, transition rules where no old value can be found, estimated cost),
//! compiled once per served version (`rules_of`), and run over each custom object written
//! (`validate`, with the stored object for transition rules). The CEL interpreter is the
//! `cel` crate with Kubernetes' extension libraries (`library`); values are shown to it as
//! kube types them (`value`).
//!
//! The interpreter recurses per operator and, in a debug build, needs far more than a
//! thread's default stack, so compiling and evaluating run on a thread of their own with a
//! large stack; an interpreter panic is caught and reported as an evaluation error.

mod compile;
mod cost;
mod eval;
pub mod library;
mod value;

use std::sync::{Arc, OnceLock};

use serde_json::Value;

use crate::status::FieldCause;

pub use compile::compile_with;
pub use eval::error_text;
pub use value::from_json;

/// A root CEL context with Kubernetes' libraries.
pub fn context() -> cel::Context<'static> {
    let mut context = cel::Context::default();
    library::register(&mut context);
    context
}

/// The stack of a CEL thread: enough for the longest rule in a debug build.
const STACK_BYTES: usize = 256 << 20;

/// A version's compiled rules: `None` when its schema has none.
pub type Compiled = Option<Arc<compile::Node>>;

/// The lazily compiled rules of a served version.
pub struct Rules {
    /// Whether the schema holds any rule (most do not: nothing runs then).
    present: bool,
    compiled: OnceLock<Compiled>,
}

impl std::fmt::Debug for Rules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rules")
            .field("present", &self.present)
            .finish()
    }
}

impl Rules {
    pub fn new(schema: &Value) -> Self {
        Rules {
            present: mentions_rules(schema),
            compiled: OnceLock::new(),
        }
    }
}

/// The problems kube would find in the rules of `schema` (a version's `openAPIV3Schema`),
/// under `prefix`.
pub fn check(schema: &Value, prefix: &str) -> Vec<FieldCause> {
    if !mentions_rules(schema) {
        return Vec::new();
    }
    on_cel_thread(|| {
        let mut causes = Vec::new();
        compile::build(schema, prefix, &mut causes);
        causes
    })
    .unwrap_or_else(|| {
        vec![FieldCause::invalid(
            prefix,
            "\"object\"",
            "rule compiler initialization error",
        )]
    })
}

/// Runs the rules of `schema` over `object` (being written; `old` is the stored object of an
/// update) and adds what fails to `causes`.
pub fn validate(
    rules: &Rules,
    schema: &Value,
    object: &Value,
    old: Option<&Value>,
    causes: &mut Vec<FieldCause>,
) {
    if !rules.present {
        return;
    }
    let found = on_cel_thread(|| {
        let compiled = rules.compiled.get_or_init(|| {
            let mut ignored = Vec::new();
            compile::build(schema, "", &mut ignored).map(Arc::new)
        });
        let mut found = Vec::new();
        if let Some(root) = compiled {
            eval::validate(root, object, old, &mut found);
        }
        found
    });
    match found {
        Some(found) => causes.extend(found),
        None => causes.push(FieldCause::invalid(
            "<nil>",
            "\"object\"",
            "internal error running the validation rules",
        )),
    }
}

/// Whether any schema node holds rules (a cheap pre-check before a thread is started).
fn mentions_rules(schema: &Value) -> bool {
    fn walk(value: &Value, depth: usize) -> bool {
        depth < 200
            && match value {
                Value::Object(fields) => fields
                    .iter()
                    .any(|(k, v)| k == "x-kubernetes-validations" || walk(v, depth + 1)),
                Value::Array(items) => items.iter().any(|v| walk(v, depth + 1)),
                _ => false,
            }
    }
    walk(schema, 0)
}

/// Runs `work` on a thread with a large stack and waits for it; `None` if the thread could
/// not start or panicked.
pub fn on_cel_thread<T: Send>(work: impl FnOnce() -> T + Send) -> Option<T> {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("cel".to_owned())
            .stack_size(STACK_BYTES)
            .spawn_scoped(scope, work)
            .ok()?
            .join()
            .ok()
    })
}
