//! Kernel tests of pod volumes: emptyDir on disk shared by two containers, a Memory emptyDir
//! that is a tmpfs of its sizeLimit, readOnly mounts, hostPath types with kubelet's errors,
//! subPath (and its escape refused), downwardAPI and projected volumes (labels changes
//! reaching the files atomically), and every host-side mount gone after the pod is deleted,
//! also when the delete happens through an agent that was killed and restarted.

mod common;

use std::time::Duration;

use common::{Node, BUSYBOX};

fn pod_yaml(name: &str, volumes: &str, containers: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  restartPolicy: Never\n  terminationGracePeriodSeconds: 1\n  volumes:\n{volumes}  containers:\n{containers}"
    )
}

fn container(name: &str, script: &str, mounts: &str) -> String {
    format!(
        "  - name: {name}\n    image: {BUSYBOX}\n    command: [sh, -c, '{script}']\n    volumeMounts:\n{mounts}"
    )
}

fn waiting(p: &serde_json::Value, i: usize) -> (String, String) {
    let w = &p["containerStatuses"][i]["state"]["waiting"];
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
    (s(&w["reason"]), s(&w["message"]))
}

fn tmpfs_mounts(node: &Node) -> Vec<String> {
    node.mounts()
        .into_iter()
        .filter(|m| m.split(' ').nth(2) == Some("tmpfs"))
        .collect()
}

#[test]
fn empty_dirs_are_shared_memory_ones_are_sized_tmpfs_and_all_go_with_the_pod() {
    let mut node = Node::new("vol-empty");
    node.start_daemon();
    let volumes = "  - {name: shared, emptyDir: {}}\n  - {name: mem, emptyDir: {medium: Memory, sizeLimit: 4Mi}}\n";
    let writer = container(
        "writer",
        "grep \" /mem \" /proc/mounts; dd if=/dev/zero of=/mem/big bs=1M count=8 2>/dev/null; echo dd=$?; echo hello > /shared/msg; sleep 1000",
        "    - {name: shared, mountPath: /shared}\n    - {name: mem, mountPath: /mem}\n",
    );
    let reader = container(
        "reader",
        "until [ -f /shared/msg ]; do sleep 0.1; done; echo got=$(cat /shared/msg); touch /ro/x 2>/dev/null; echo touch=$?; sleep 1000",
        "    - {name: shared, mountPath: /ro, readOnly: true}\n    - {name: shared, mountPath: /shared}\n",
    );
    node.apply(
        "p.yaml",
        &pod_yaml("shared", volumes, &format!("{writer}{reader}")),
    );
    node.wait_pod("shared", "both running", Duration::from_secs(30), |p| {
        p["containerStatuses"][0]["state"]["running"].is_object()
            && p["containerStatuses"][1]["state"]["running"].is_object()
    });
    common::wait_until("reader output", Duration::from_secs(20), || {
        node.try_logs(&["shared", "-c", "reader"])
            .is_some_and(|l| l.contains("touch="))
    });
    let reader = node.logs(&["shared", "-c", "reader"]);
    assert!(reader.contains("got=hello"), "{reader}");
    assert!(
        reader.contains("touch=1"),
        "a readOnly mount refuses writes: {reader}"
    );
    let writer = node.logs(&["shared", "-c", "writer"]);
    assert!(
        writer.contains("tmpfs /mem tmpfs") && writer.contains("size=4096k"),
        "{writer}"
    );
    assert!(
        writer.contains("dd=1"),
        "a write beyond sizeLimit fails: {writer}"
    );
    // The tmpfs is mounted on the host side, under the pod's directory in the agent root.
    let mem = tmpfs_mounts(&node);
    assert!(
        mem.iter()
            .any(|m| m.contains("kubernetes.io~empty-dir/mem")),
        "{mem:?}"
    );
    node.remove("p.yaml");
    node.wait_gone("shared", Duration::from_secs(30));
    assert!(node.mounts().is_empty(), "{:?}", node.mounts());
}

/// Containers' mount namespaces are cut from a template the agent copies when it starts its
/// first container: a volume mounted on the host after that (here a Memory emptyDir of a later
/// pod) must still reach the container as the mount it is, not as the directory under it.
#[test]
fn a_volume_mounted_after_the_first_container_started_reaches_later_containers() {
    let mut node = Node::new("vol-later");
    node.start_daemon();
    let first = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: first}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - {{name: first, image: {BUSYBOX}, command: [sleep, '1000']}}\n"
    );
    node.apply("first.yaml", &first);
    node.wait_pod("first", "running", Duration::from_secs(30), |p| {
        p["containerStatuses"][0]["state"]["running"].is_object()
    });
    let volumes = "  - {name: mem, emptyDir: {medium: Memory, sizeLimit: 2Mi}}\n";
    let later = container(
        "later",
        "grep \" /mem \" /proc/mounts; echo listed; sleep 1000",
        "    - {name: mem, mountPath: /mem}\n",
    );
    node.apply("later.yaml", &pod_yaml("later", volumes, &later));
    common::wait_until("later output", Duration::from_secs(30), || {
        node.try_logs(&["later", "-c", "later"])
            .is_some_and(|l| l.contains("listed"))
    });
    let logs = node.logs(&["later", "-c", "later"]);
    assert!(
        logs.contains("tmpfs /mem tmpfs") && logs.contains("size=2048k"),
        "{logs}"
    );
    node.remove("later.yaml");
    node.remove("first.yaml");
    node.wait_gone("later", Duration::from_secs(30));
    node.wait_gone("first", Duration::from_secs(30));
    assert!(node.mounts().is_empty(), "{:?}", node.mounts());
}

#[test]
fn host_path_types_are_checked_and_sub_paths_never_leave_their_volume() {
    let mut node = Node::new("vol-host");
    node.start_daemon();
    let host = node.base.join("host");
    std::fs::create_dir_all(host.join("data/inner")).expect("mkdir");
    std::fs::write(host.join("data/inner/file"), "from-host\n").expect("write");
    std::fs::write(host.join("plain"), "x").expect("write");
    std::os::unix::fs::symlink("/etc", host.join("data/escape")).expect("symlink");
    let h = host.display();

    // Directory on a file: kubelet's error, the container waits in ContainerCreating.
    let volumes = format!("  - {{name: h, hostPath: {{path: {h}/plain, type: Directory}}}}\n");
    let c = container("c", "sleep 1000", "    - {name: h, mountPath: /h}\n");
    node.apply("bad.yaml", &pod_yaml("bad", &volumes, &c));
    let p = node.wait_pod("bad", "type check failure", Duration::from_secs(30), |p| {
        waiting(p, 0).1.contains("hostPath type check failed")
    });
    let (reason, message) = waiting(&p, 0);
    assert_eq!(reason, "ContainerCreating", "{p:#}");
    assert_eq!(
        message,
        format!("MountVolume.SetUp failed for volume \"h\" : hostPath type check failed: {h}/plain is not a directory")
    );

    // DirectoryOrCreate and FileOrCreate make what is missing; subPath picks inside a volume.
    let volumes = format!(
        "  - {{name: d, hostPath: {{path: {h}/made/dir, type: DirectoryOrCreate}}}}\n  - {{name: f, hostPath: {{path: {h}/made/file, type: FileOrCreate}}}}\n  - {{name: data, hostPath: {{path: {h}/data, type: Directory}}}}\n"
    );
    let c = container(
        "c",
        "echo written > /d/out; echo file > /f; cat /inner-file; ls /sub; sleep 1000",
        "    - {name: d, mountPath: /d}\n    - {name: f, mountPath: /f}\n    - {name: data, mountPath: /inner-file, subPath: inner/file}\n    - {name: data, mountPath: /sub, subPath: inner}\n",
    );
    node.apply("good.yaml", &pod_yaml("good", &volumes, &c));
    node.wait_pod("good", "running", Duration::from_secs(30), |p| {
        p["containerStatuses"][0]["state"]["running"].is_object()
    });
    common::wait_until("host files written", Duration::from_secs(20), || {
        std::fs::read_to_string(host.join("made/dir/out")).is_ok_and(|s| s == "written\n")
            && std::fs::read_to_string(host.join("made/file")).is_ok_and(|s| s == "file\n")
    });
    common::wait_until("subPath output", Duration::from_secs(20), || {
        node.try_logs(&["good"])
            .is_some_and(|l| l.contains("from-host") && l.contains("file"))
    });

    // A subPath through a symlink out of its volume is refused before the container exists.
    let c = container(
        "c",
        "sleep 1000",
        "    - {name: data, mountPath: /x, subPath: escape}\n",
    );
    let volumes = format!("  - {{name: data, hostPath: {{path: {h}/data}}}}\n");
    node.apply("esc.yaml", &pod_yaml("esc", &volumes, &c));
    let p = node.wait_pod("esc", "subPath refused", Duration::from_secs(30), |p| {
        waiting(p, 0).0 == "CreateContainerConfigError"
    });
    let (_, message) = waiting(&p, 0);
    assert!(
        message.contains("failed to prepare subPath") && message.contains("not within volume path"),
        "{message}"
    );

    for (f, name) in [
        ("bad.yaml", "bad"),
        ("good.yaml", "good"),
        ("esc.yaml", "esc"),
    ] {
        node.remove(f);
        node.wait_gone(name, Duration::from_secs(30));
    }
    assert!(node.mounts().is_empty(), "{:?}", node.mounts());
    assert!(
        host.join("data/inner/file").exists(),
        "the host's files stay"
    );
}

#[test]
fn host_side_mounts_go_when_a_restarted_agent_deletes_the_pod() {
    let mut node = Node::new("vol-restart");
    node.start_daemon();
    let volumes = "  - {name: mem, emptyDir: {medium: Memory, sizeLimit: 1Mi}}\n";
    let c = container(
        "c",
        "sleep 1000",
        "    - {name: mem, mountPath: /mem}\n    - {name: mem, mountPath: /sub, subPath: a/b}\n",
    );
    node.apply("p.yaml", &pod_yaml("kept", volumes, &c));
    node.wait_pod("kept", "running", Duration::from_secs(30), |p| {
        p["containerStatuses"][0]["state"]["running"].is_object()
    });
    // The tmpfs and the subPath's bind are on the host side (and the pod's /etc files' tmpfs).
    let before = node.mounts();
    assert_eq!(before.len(), 3 + sandbox_mounts(&before), "{before:?}");
    assert!(
        before.iter().any(|m| m.contains("/etc tmpfs")),
        "{before:?}"
    );
    assert!(
        before.iter().any(|m| m.contains("volume-subpaths/mem/c/1")),
        "{before:?}"
    );
    node.kill_daemon();
    node.remove("p.yaml");
    node.start_daemon();
    node.wait_gone("kept", Duration::from_secs(30));
    common::wait_until("every mount gone", Duration::from_secs(10), || {
        node.mounts().is_empty()
    });
}

/// The sandbox's namespace bind mounts among `mounts`.
fn sandbox_mounts(mounts: &[String]) -> usize {
    mounts.iter().filter(|m| m.contains("/ns/")).count()
}

fn info_pod(labels: &str, annotations: &str) -> String {
    let script = "cat /info/name; echo; cat /info/mem; echo; cat /info/meta/annotations; echo; stat -L -c \"mode %a %n\" /info/labels /info/mem /proj/ns; grep \" /proj \" /proc/mounts; echo ns=$(cat /proj/ns); while true; do echo \"L:$(tr \"\\n\" , < /info/labels) A:$(cat /proj/app)\"; sleep 0.05; done";
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: info, labels: {labels}, annotations: {annotations}}}
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - name: info
    downwardAPI:
      defaultMode: 384
      items:
      - {{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}
      - {{path: meta/annotations, fieldRef: {{fieldPath: metadata.annotations}}}}
      - {{path: name, fieldRef: {{fieldPath: metadata.name}}}}
      - {{path: mem, mode: 256, resourceFieldRef: {{containerName: c, resource: limits.memory, divisor: 1Mi}}}}
  - name: proj
    projected:
      defaultMode: 288
      sources:
      - downwardAPI:
          items:
          - {{path: ns, fieldRef: {{fieldPath: metadata.namespace}}}}
          - {{path: app, fieldRef: {{fieldPath: "metadata.labels['app']"}}}}
  containers:
  - name: c
    image: {BUSYBOX}
    resources: {{limits: {{memory: 64Mi}}}}
    command: [sh, -c, '{script}']
    volumeMounts:
    - {{name: info, mountPath: /info}}
    - {{name: proj, mountPath: /proj}}
"#
    )
}

/// downwardAPI files show the pod's fields in kubelet's format with their modes, a projected
/// volume is a tmpfs, and a labels change (the spec unchanged, so the pod keeps running)
/// reaches both volumes' files, a reader seeing only the whole old or the whole new content.
#[test]
fn downward_api_files_follow_label_changes_atomically() {
    let mut node = Node::new("vol-down");
    node.start_daemon();
    node.apply(
        "p.yaml",
        &info_pod("{app: web, tier: one}", "{note: first}"),
    );
    common::wait_until("downward output", Duration::from_secs(30), || {
        node.try_logs(&["info"]).is_some_and(|l| l.contains("L:"))
    });
    let logs = node.logs(&["info"]);
    for want in [
        "info\n64\nnote=\"first\"\n",
        "mode 600 /info/labels",
        "mode 400 /info/mem",
        "mode 440 /proj/ns",
        "tmpfs /proj tmpfs",
        "ns=default",
        "L:app=\"web\",tier=\"one\" A:web",
    ] {
        assert!(logs.contains(want), "{want:?} in {logs}");
    }
    let started = node.pod("info").expect("pod")["startTime"].clone();
    assert!(started.is_string(), "{started}");
    node.apply(
        "p.yaml",
        &info_pod("{app: api, tier: two}", "{note: second}"),
    );
    let new = "L:app=\"api\",tier=\"two\" A:api";
    common::wait_until(
        "the new labels in the files",
        Duration::from_secs(10),
        || node.try_logs(&["info"]).is_some_and(|l| l.contains(new)),
    );
    let logs = node.logs(&["info"]);
    let old = "L:app=\"web\",tier=\"one\" A:web";
    // The two volumes are separate swaps, so a line may show one old and one new.
    let allowed = [
        old,
        new,
        "L:app=\"api\",tier=\"two\" A:web",
        "L:app=\"web\",tier=\"one\" A:api",
    ];
    for line in logs.lines().filter(|l| l.starts_with("L:")) {
        assert!(allowed.contains(&line), "a partial file was read: {line:?}");
    }
    assert_eq!(
        node.pod("info").expect("pod")["startTime"],
        started,
        "the pod was not replaced"
    );
    node.remove("p.yaml");
    node.wait_gone("info", Duration::from_secs(30));
    assert!(node.mounts().is_empty(), "{:?}", node.mounts());
}
