//! Kubernetes name formats (DNS-1123 label and subdomain, IANA service names, label keys and
//! values). Each check returns `None` when the name is valid, or the reason it is not, worded
//! like the API server's messages. It never knows which field it is checking.

const DNS1123_LABEL_MAX: usize = 63;
const DNS1123_SUBDOMAIN_MAX: usize = 253;
const IANA_SVC_NAME_MAX: usize = 15;

/// A DNS-1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn dns1123_label_error(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must be non-empty".into());
    }
    if name.len() > DNS1123_LABEL_MAX {
        return Some(format!(
            "must be no more than {DNS1123_LABEL_MAX} characters"
        ));
    }
    if !is_label(
        name,
        |c| c.is_ascii_lowercase() || c.is_ascii_digit(),
        |c| c == '-',
    ) {
        return Some(format!(
            "{name:?} must be a lowercase RFC 1123 label: lowercase alphanumerics or '-', \
             starting and ending with an alphanumeric (e.g. 'my-name')"
        ));
    }
    None
}

/// A DNS-1123 subdomain: dot-separated DNS-1123 labels, at most 253 characters.
pub fn dns1123_subdomain_error(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must be non-empty".into());
    }
    if name.len() > DNS1123_SUBDOMAIN_MAX {
        return Some(format!(
            "must be no more than {DNS1123_SUBDOMAIN_MAX} characters"
        ));
    }
    let label_ok = |l: &str| {
        is_label(
            l,
            |c| c.is_ascii_lowercase() || c.is_ascii_digit(),
            |c| c == '-',
        )
    };
    if !name.split('.').all(label_ok) {
        return Some(format!(
            "{name:?} must be a lowercase RFC 1123 subdomain: lowercase alphanumerics, '-' or \
             '.', starting and ending with an alphanumeric (e.g. 'example.com')"
        ));
    }
    None
}

/// An IANA service name (container port names): at most 15 lowercase alphanumerics or '-',
/// at least one letter, no leading, trailing or doubled '-'.
pub fn iana_svc_name_error(name: &str) -> Option<String> {
    if name.is_empty() || name.len() > IANA_SVC_NAME_MAX {
        return Some(format!("must be 1 to {IANA_SVC_NAME_MAX} characters"));
    }
    let charset_ok = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !charset_ok || name.starts_with('-') || name.ends_with('-') || name.contains("--") {
        return Some(format!(
            "{name:?} must contain only lowercase alphanumerics and single '-' between them"
        ));
    }
    if !name.chars().any(|c| c.is_ascii_lowercase()) {
        return Some(format!("{name:?} must contain at least one letter"));
    }
    None
}

/// A label key: an optional DNS-1123 subdomain prefix and '/', then a name of at most 63
/// alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric.
pub fn label_key_error(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(reason) = prefix.and_then(dns1123_subdomain_error) {
        return Some(format!("prefix {reason}"));
    }
    if name.is_empty() || name.len() > DNS1123_LABEL_MAX || !is_qualified_name(name) {
        return Some(format!(
            "{key:?} is not a valid label key: name part must be 1 to 63 alphanumerics, '-', \
             '_' or '.', starting and ending with an alphanumeric"
        ));
    }
    None
}

/// A label value: empty, or at most 63 alphanumerics, '-', '_' or '.', starting and ending
/// with an alphanumeric.
pub fn label_value_error(value: &str) -> Option<String> {
    if value.is_empty() {
        return None;
    }
    if value.len() > DNS1123_LABEL_MAX || !is_qualified_name(value) {
        return Some(format!(
            "{value:?} is not a valid label value: at most 63 alphanumerics, '-', '_' or '.', \
             starting and ending with an alphanumeric"
        ));
    }
    None
}

fn is_qualified_name(s: &str) -> bool {
    is_label(
        s,
        |c| c.is_ascii_alphanumeric(),
        |c| matches!(c, '-' | '_' | '.'),
    )
}

/// Non-empty; every character is an edge character or an inner one; starts and ends with an
/// edge character.
fn is_label(s: &str, edge: impl Fn(char) -> bool, inner: impl Fn(char) -> bool) -> bool {
    let (Some(first), Some(last)) = (s.chars().next(), s.chars().last()) else {
        return false;
    };
    edge(first) && edge(last) && s.chars().all(|c| edge(c) || inner(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns1123_labels() {
        for ok in ["a", "web", "my-app-1", "0", &"a".repeat(63)] {
            assert_eq!(dns1123_label_error(ok), None, "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a.b", "a_b", &"a".repeat(64)] {
            assert!(dns1123_label_error(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn dns1123_subdomains() {
        for ok in ["a", "a.b", "my-app.example.com", "0.1"] {
            assert_eq!(dns1123_subdomain_error(ok), None, "{ok}");
        }
        for bad in ["", ".a", "a.", "a..b", "a.-b", "Web", &"a".repeat(254)] {
            assert!(dns1123_subdomain_error(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn iana_service_names() {
        for ok in ["http", "web-1", "h2c", "a"] {
            assert_eq!(iana_svc_name_error(ok), None, "{ok}");
        }
        for bad in [
            "",
            "80",
            "-http",
            "http-",
            "a--b",
            "HTTP",
            "a-very-long-port-name",
        ] {
            assert!(iana_svc_name_error(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn label_keys_and_values() {
        for ok in ["app", "app.kubernetes.io/name", "A_b.c-d"] {
            assert_eq!(label_key_error(ok), None, "{ok}");
        }
        for bad in ["", "/app", "Example.com/app", "a/", "-app", "a/b/c"] {
            assert!(label_key_error(bad).is_some(), "{bad}");
        }
        for ok in ["", "v1", "1.2.3", "Foo_bar"] {
            assert_eq!(label_value_error(ok), None, "{ok}");
        }
        for bad in ["-x", "x-", "a b", &"a".repeat(64)] {
            assert!(label_value_error(bad).is_some(), "{bad}");
        }
    }
}
