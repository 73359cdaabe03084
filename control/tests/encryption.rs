//! Secrets are encrypted at rest: the store's files never hold a Secret's data, while the
//! real kubectl reads it back as written. A ConfigMap with the same text is stored as it is —
//! the control that shows the search of the files would find the text if it were there.

mod common;

use common::{ok, Control};

const OBJECTS: &str = "apiVersion: v1
kind: Secret
metadata: {name: db}
data: {password: dG9wLXNlY3JldC1wYXNzd29yZC00Mg==}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: plain}
data: {note: visible-config-text-42}
";

/// Every byte of the store's files (`state.db` and its WAL).
fn store_bytes(control: &Control) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(control.dir.path())
        .expect("data dir")
        .flatten()
    {
        if entry.file_name().to_string_lossy().starts_with("state.db") {
            out.extend(std::fs::read(entry.path()).expect("store file"));
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn secret_data_never_reaches_the_store_files_in_clear() {
    let mut control = Control::start();
    let file = control.dir.path().join("objects.yaml");
    std::fs::write(&file, OBJECTS).expect("write");
    ok(control.kubectl(&["create", "-f", file.to_str().expect("path")]));

    let read = ok(control.kubectl(&["get", "secret", "db", "-o", "jsonpath={.data.password}"]));
    assert_eq!(read, "dG9wLXNlY3JldC1wYXNzd29yZC00Mg==");

    let bytes = store_bytes(&control);
    assert!(
        contains(&bytes, b"visible-config-text-42"),
        "the control: a ConfigMap is stored as it is, so the search works"
    );
    assert!(!contains(&bytes, b"dG9wLXNlY3JldC1wYXNzd29yZC00Mg=="));
    assert!(!contains(&bytes, b"top-secret-password-42"));
    assert!(contains(&bytes, b"k8s:enc:aesgcm:v1:bosun:"));

    // The key is kept: after a restart the Secret still reads back.
    control.restart();
    let read = ok(control.kubectl(&["get", "secret", "db", "-o", "jsonpath={.data.password}"]));
    assert_eq!(read, "dG9wLXNlY3JldC1wYXNzd29yZC00Mg==");
    let key = control.dir.path().join("secrets-encryption.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key).expect("key").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
}
