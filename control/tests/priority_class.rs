//! PriorityClasses and pod priority through the real kubectl: the system classes from the
//! start; `kubectl create priorityclass` (protobuf) and kube's table; Priority admission
//! filling a pod's `priority` and `preemptionPolicy` from its class (or the global default),
//! refusing an unknown class and a stated priority, in kube's words; kube's class rules
//! (reserved `system-` names, the user maximum, one global default, value immutable).

mod common;

use std::time::{Duration, Instant};

use common::{ok, stderr, Control};
use serde_json::Value;

fn pod_yaml(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n{extra}  containers: [{{name: c, image: busybox}}]\n"
    )
}

fn apply(control: &Control, text: &str, dry_run: bool) -> std::process::Output {
    let path = control.dir.path().join("pod.yaml");
    std::fs::write(&path, text).expect("write manifest");
    let file = path.to_str().unwrap_or_default().to_owned();
    let mut args = vec!["create", "-f", &file, "-o", "json"];
    if dry_run {
        args.push("--dry-run=server");
    }
    control.kubectl(&args)
}

fn created(control: &Control, text: &str) -> Value {
    serde_json::from_str(&ok(apply(control, text, false))).unwrap_or_default()
}

#[test]
fn pods_take_their_priority_from_their_class() {
    let control = Control::start();
    let table = ok(control.kubectl(&["get", "priorityclasses"]));
    assert!(
        table.contains("NAME                      VALUE        GLOBAL-DEFAULT   AGE")
            && table.contains("PREEMPTIONPOLICY"),
        "{table}"
    );
    assert!(
        table.contains("system-cluster-critical   2000000000   false"),
        "{table}"
    );
    assert!(
        table.contains("system-node-critical      2000001000   false"),
        "{table}"
    );

    ok(control.kubectl(&[
        "create",
        "priorityclass",
        "high",
        "--value=1000",
        "--description=for tests",
    ]));
    let pod = created(&control, &pod_yaml("a", "  priorityClassName: high\n"));
    assert_eq!(pod["spec"]["priority"], 1000, "{pod:#}");
    assert_eq!(pod["spec"]["preemptionPolicy"], "PreemptLowerPriority");
    let pod = created(
        &control,
        &pod_yaml("b", "  priorityClassName: system-node-critical\n"),
    );
    assert_eq!(pod["spec"]["priority"], 2000001000);
    let pod = created(&control, &pod_yaml("c", ""));
    assert_eq!(pod["spec"]["priority"], 0);

    let out = apply(
        &control,
        &pod_yaml("d", "  priorityClassName: nope\n"),
        false,
    );
    assert!(
        stderr(&out).contains("pods \"d\" is forbidden: no PriorityClass with name nope was found"),
        "{}",
        stderr(&out)
    );
    let out = apply(&control, &pod_yaml("e", "  priority: 5\n"), false);
    assert!(
        stderr(&out).contains("the integer value of priority (5) must not be provided in pod spec; priority admission controller computed 0 from the given PriorityClass name"),
        "{}",
        stderr(&out)
    );

    ok(control.kubectl(&[
        "create",
        "priorityclass",
        "low",
        "--value=10",
        "--global-default",
    ]));
    // The default is read from a watch of the classes: wait (bounded) until a dry run sees it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = apply(&control, &pod_yaml("f", ""), true);
        let pod: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if pod["spec"]["priorityClassName"] == "low" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the global default never applied: {pod:#}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let pod = created(&control, &pod_yaml("f", ""));
    assert_eq!(pod["spec"]["priority"], 10);
    let out = control.kubectl(&[
        "create",
        "priorityclass",
        "other",
        "--value=20",
        "--global-default",
    ]);
    assert!(
        stderr(&out)
            .contains("PriorityClass low is already marked as default. Only one default can exist"),
        "{}",
        stderr(&out)
    );

    for (args, want) in [
        (
            vec!["create", "priorityclass", "system-mine", "--value=1"],
            "priority class names with 'system-' prefix are reserved for system use only",
        ),
        (
            vec!["create", "priorityclass", "huge", "--value=2000000000"],
            "maximum allowed value of a user defined priority is 1000000000",
        ),
        (
            vec![
                "patch",
                "priorityclass",
                "high",
                "--type=merge",
                "-p",
                r#"{"value":2000}"#,
            ],
            "value: Forbidden: may not be changed in an update.",
        ),
    ] {
        let out = control.kubectl(&args);
        assert!(stderr(&out).contains(want), "{args:?}: {}", stderr(&out));
    }
}
