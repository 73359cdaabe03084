//! The one error type of the `spec` module: a manifest problem, named by the field path that
//! caused it (`spec.containers[1].name`) and, in multi-document input, by document index.
//! It never carries I/O errors: reading manifest files is the caller's business.

use std::fmt;

/// A manifest that could not be parsed or failed validation.
///
/// `field` is a Kubernetes-style path (`spec.containers[0].resources.limits.memory`); it is
/// empty when the problem is the document as a whole (YAML syntax). `document` is the 0-based
/// index of the YAML/JSON document in multi-document input, `None` for single documents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SpecError {
    pub field: String,
    pub message: String,
    pub document: Option<usize>,
}

impl SpecError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        SpecError {
            field: field.into(),
            message: message.into(),
            document: None,
        }
    }

    /// Puts the error at `field`, keeping any path the error already had below it
    /// (errors from `Quantity` carry no path; validation places them).
    pub fn at(mut self, field: &str) -> Self {
        self.field = join_path(field, &self.field);
        self
    }

    /// Marks the error as coming from document `index` of a multi-document stream.
    pub fn in_document(mut self, index: usize) -> Self {
        self.document = Some(index);
        self
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(index) = self.document {
            write!(f, "document {index}: ")?;
        }
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// Joins two field paths: `("spec", "containers[0]")` → `spec.containers[0]`,
/// `("items[2]", "")` → `items[2]`, `("spec.containers", "[0].name")` → `spec.containers[0].name`.
pub(crate) fn join_path(prefix: &str, rest: &str) -> String {
    match (prefix.is_empty(), rest.is_empty()) {
        (_, true) => prefix.to_string(),
        (true, false) => rest.to_string(),
        (false, false) if rest.starts_with('[') => format!("{prefix}{rest}"),
        (false, false) => format!("{prefix}.{rest}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_field_colon_message() {
        let e = SpecError::new("spec.containers[1].name", "must be non-empty");
        assert_eq!(e.to_string(), "spec.containers[1].name: must be non-empty");
    }

    #[test]
    fn display_names_the_document_when_known() {
        let e = SpecError::new("kind", "missing").in_document(2);
        assert_eq!(e.to_string(), "document 2: kind: missing");
    }

    #[test]
    fn display_without_field_is_just_the_message() {
        assert_eq!(SpecError::new("", "bad yaml").to_string(), "bad yaml");
    }

    #[test]
    fn at_prefixes_existing_paths() {
        let e = SpecError::new("", "bad").at("spec.x");
        assert_eq!(e.field, "spec.x");
        let e = SpecError::new("name", "bad").at("items[3]");
        assert_eq!(e.field, "items[3].name");
        assert_eq!(
            join_path("spec.containers", "[0].name"),
            "spec.containers[0].name"
        );
    }
}
