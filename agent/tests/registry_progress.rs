//! `bosun-agent image pull`'s output: plain when stderr is not a terminal (the pull result on
//! stdout, the per-layer byte counts as log lines, no bar drawing), per-layer progress bars
//! when it is one (run under `script`, which gives the command a pseudo-terminal).

mod common;

use std::process::Command;

use common::registry::{layout_digests, Registry};
use common::{stderr, stdout, Node};

/// Empties the node's store (Node::new imported the test images), so the pull downloads.
fn empty_store(node: &Node) {
    for image in ["bosun.test/busybox:1", "bosun.test/busybox-entry:1"] {
        let out = node
            .cmd()
            .args(["image", "rm", image])
            .output()
            .expect("rm");
        assert!(out.status.success(), "{}", stderr(&out));
    }
}

#[test]
fn pull_output_is_plain_when_not_a_terminal() {
    let reg = Registry::start();
    reg.push("busybox", "bosun/busybox:1");
    let node = Node::new("pull-plain").with_flags(&["--insecure-registry", reg.host.as_str()]);
    empty_store(&node);
    let (manifest, layers) = layout_digests("busybox");
    let image = format!("{}/bosun/busybox:1", reg.host);
    let out = node
        .cmd()
        .args(["image", "pull", &image])
        .output()
        .expect("pull");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("pulled {image} {manifest}\n"));
    let err = stderr(&out);
    assert!(
        !err.contains('\r') && !err.contains("\x1b[") && !err.contains("=>"),
        "bar drawing on a non-terminal:\n{err:?}"
    );
    for layer in &layers {
        let line = err
            .lines()
            .find(|l| l.contains("blob downloaded") && l.contains(layer.as_str()))
            .unwrap_or_else(|| panic!("no byte count for layer {layer}:\n{err}"));
        assert!(line.contains("bytes="), "{line}");
    }
}

#[test]
fn pull_draws_a_bar_per_layer_on_a_terminal() {
    let reg = Registry::start();
    reg.push("busybox", "bosun/busybox:1");
    let node = Node::new("pull-tty").with_flags(&["--insecure-registry", reg.host.as_str()]);
    empty_store(&node);
    let (manifest, layers) = layout_digests("busybox");
    let image = format!("{}/bosun/busybox:1", reg.host);
    let mut cmd = node.cmd();
    cmd.args(["image", "pull", &image]);
    let quote = |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy().replace('\'', "'\\''"));
    let line: Vec<String> = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(quote)
        .collect();
    let typescript = node.base.join("typescript");
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &line.join(" ")])
        .arg(&typescript)
        .output()
        .expect("run script");
    assert!(out.status.success(), "{}", stderr(&out));
    let screen =
        String::from_utf8_lossy(&std::fs::read(&typescript).expect("typescript")).into_owned();
    assert!(
        screen.contains(&format!("pulled {image} {manifest}")),
        "{screen}"
    );
    for layer in &layers {
        let short = &layer.trim_start_matches("sha256:")[..12];
        assert!(
            screen
                .lines()
                .any(|l| l.contains(short) && l.contains("done")),
            "no finished bar for layer {short}:\n{screen}"
        );
    }
}
