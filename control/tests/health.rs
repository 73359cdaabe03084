//! The health endpoints as kube-apiserver serves them, read with the real kubectl (`get
//! --raw`): `/readyz?verbose` lists each check, `exclude` skips one, `/livez/etcd` runs one
//! check; the top-level endpoints answer callers without credentials, the single checks need
//! the right to read them. Over a real etcd whose only member is killed, `/readyz` fails
//! naming the etcd check, and passes again once the member is back.

mod common;
mod etcd_cluster;

use std::time::Duration;

use common::{kubectl_with, ok, stderr, Control};

#[test]
fn health_endpoints_list_their_checks_and_guard_the_single_ones() {
    let control = Control::start();
    let verbose = ok(control.kubectl(&["get", "--raw", "/readyz?verbose"]));
    assert_eq!(
        verbose,
        "[+]ping ok\n[+]log ok\n[+]etcd ok\n[+]etcd-readiness ok\nreadyz check passed\n"
    );
    let excluded =
        ok(control.kubectl(&["get", "--raw", "/livez?verbose&exclude=etcd&exclude=nosuch"]));
    assert!(excluded.contains("[+]etcd excluded: ok\n"), "{excluded}");
    assert!(excluded.contains("no matches for \"nosuch\""), "{excluded}");
    assert!(excluded.ends_with("livez check passed\n"), "{excluded}");
    assert_eq!(ok(control.kubectl(&["get", "--raw", "/healthz"])), "ok");
    assert_eq!(ok(control.kubectl(&["get", "--raw", "/livez/etcd"])), "ok");
    let missing = control.kubectl(&["get", "--raw", "/readyz/nosuch"]);
    assert!(
        stderr(&missing).contains("NotFound"),
        "{}",
        stderr(&missing)
    );

    // A node may read /readyz (public) but not a single check (system:monitoring's).
    let node = control.node_kubeconfig("n1");
    assert_eq!(ok(kubectl_with(&node, &["get", "--raw", "/readyz"])), "ok");
    let denied = kubectl_with(&node, &["get", "--raw", "/readyz/etcd"]);
    assert!(stderr(&denied).contains("Forbidden"), "{}", stderr(&denied));

    // No credentials at all (Python's TLS client with the CA only): /readyz answers.
    let ca = control.dir.path().join("pki").join("ca.crt");
    assert!(ca.exists(), "no CA at {}", ca.display());
    let script = "import ssl,sys,urllib.request\n\
ctx=ssl.create_default_context(cafile=sys.argv[2])\n\
r=urllib.request.urlopen(sys.argv[1]+'/readyz?verbose',context=ctx,timeout=10)\n\
print(r.status, r.read().decode().splitlines()[-1])\n";
    let out = std::process::Command::new("python3")
        .args(["-c", script, &control.server()])
        .arg(&ca)
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.trim(), "200 readyz check passed", "{}", stderr(&out));
}

#[test]
fn readyz_fails_while_etcd_is_down_and_passes_once_it_is_back() {
    let mut etcd = etcd_cluster::Cluster::start(1);
    let endpoints = etcd.endpoints().join(",");
    let control = Control::start_with(&["--etcd-endpoints", &endpoints]);
    wait_until("ready over etcd", || {
        control
            .kubectl(&["get", "--raw", "/readyz"])
            .status
            .success()
    });

    etcd.kill(0);
    let mut last = String::new();
    wait_until("/readyz to fail naming etcd", || {
        let out = control.kubectl(&["get", "--raw", "/readyz"]);
        last = stderr(&out);
        !out.status.success() && last.contains("[-]etcd failed: reason withheld")
    });
    assert!(last.contains("[+]ping ok"), "{last}");
    assert!(last.contains("readyz check failed"), "{last}");
    let single = control.kubectl(&["get", "--raw", "/livez/etcd"]);
    assert!(!single.status.success());
    assert!(
        stderr(&single).contains("internal server error"),
        "{}",
        stderr(&single)
    );

    etcd.restart(0);
    etcd.wait_healthy(0);
    wait_until("/readyz to pass again", || {
        let out = control.kubectl(&["get", "--raw", "/readyz?verbose"]);
        out.status.success() && common::stdout(&out).contains("[+]etcd ok")
    });
}

fn wait_until(what: &str, done: impl FnMut() -> bool) {
    common::wait_until(what, Duration::from_secs(30), done);
}
