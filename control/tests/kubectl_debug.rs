//! `kubectl debug` needs the pods' `ephemeralcontainers` subresource, which bosun does not
//! serve: the real kubectl must say so in its own words (it reads the 404's details to tell
//! a missing subresource from a missing pod, and crashed when they were absent), and a pod
//! that does not exist is still reported as not found.

mod common;

use common::{stderr, Control};

#[test]
fn kubectl_debug_is_refused_as_ephemeral_containers_disabled() {
    let control = Control::start();
    let run = control.kubectl(&["run", "p1", "--image=busybox", "--", "sleep", "3600"]);
    assert!(run.status.success(), "{}", stderr(&run));
    let out = control.kubectl(&["debug", "p1", "--image=busybox", "--", "true"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("ephemeral containers are disabled for this cluster")
            && !err.contains("panic"),
        "{err}"
    );
    let out = control.kubectl(&["debug", "nope", "--image=busybox", "--", "true"]);
    assert!(
        stderr(&out).contains(r#"pods "nope" not found"#),
        "{}",
        stderr(&out)
    );
}
