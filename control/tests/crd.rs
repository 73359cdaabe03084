//! CustomResourceDefinitions driven by the real kubectl: a CRD is established, its resource
//! appears in discovery (`api-resources`, the short name) and OpenAPI (`explain`); custom
//! objects are applied, defaulted, pruned, validated against the schema (kubectl prints the
//! field), printed with the printer columns, patched (merge; status only through the status
//! subresource), collected with their owner, kept across a restart, and deleted with their
//! CRD. CRDs using what bosun does not honour are refused naming the field.

mod common;
mod etcd_cluster;

use std::time::Duration;

use common::{ok, stderr, stdout, Control};

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {kind: Widget, plural: widgets, singular: widget, shortNames: [wd]}
  scope: Namespaced
  versions:
  - name: v1beta1
    served: true
    storage: false
    deprecated: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.size, statusReplicasPath: .status.size, labelSelectorPath: .status.selector}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Color, type: string, jsonPath: .spec.color}
    - {name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status'}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1, description: How big the widget is.}
              color: {type: string, enum: [red, blue], default: blue}
              ports:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [name]
                items:
                  type: object
                  required: [name]
                  properties:
                    name: {type: string}
                    port: {type: integer}
          status:
            type: object
            properties:
              size: {type: integer}
              selector: {type: string}
              conditions:
                type: array
                items:
                  type: object
                  properties:
                    type: {type: string}
                    status: {type: string}
"#;

fn write(control: &Control, name: &str, text: &str) -> String {
    let path = control.dir.path().join(name);
    std::fs::write(&path, text).expect("write manifest");
    path.to_string_lossy().into_owned()
}

/// Applies the Widget CRD and waits until it is Established; the manifest's path.
fn establish(control: &Control) -> String {
    let crd = write(control, "crd.yaml", CRD);
    ok(control.kubectl(&["apply", "-f", &crd]));
    ok(control.kubectl(&[
        "wait",
        "--for=condition=Established",
        "crd/widgets.example.com",
        "--timeout=20s",
    ]));
    crd
}

fn wait_until(what: &str, done: impl FnMut() -> bool) {
    common::wait_until(what, Duration::from_secs(30), done);
}

#[test]
fn custom_resources_are_served_validated_printed_and_deleted_with_their_crd() {
    let mut control = Control::start_with(&["--horizontal-pod-autoscaler-sync-period", "1s"]);
    let crd = establish(&control);
    let crds = ok(control.kubectl(&["get", "crd"]));
    assert!(
        crds.starts_with("NAME ") && crds.contains("CREATED AT"),
        "{crds}"
    );
    assert!(crds.contains("widgets.example.com"), "{crds}");
    let resources =
        ok(control.kubectl(&["api-resources", "--api-group=example.com", "--no-headers"]));
    let row: Vec<&str> = resources.split_whitespace().collect();
    assert_eq!(
        row,
        ["widgets", "wd", "example.com/v1", "true", "Widget"],
        "{resources}"
    );
    let explained = ok(control.kubectl(&["explain", "widget.spec.size"]));
    assert!(explained.contains("How big the widget is."), "{explained}");

    // Applied, defaulted (color), printed with the printer columns.
    let widget = write(
        &control,
        "w1.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 3}\n",
    );
    ok(control.kubectl(&["apply", "-f", &widget]));
    let table = ok(control.kubectl(&["get", "wd"]));
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "SIZE", "COLOR", "READY", "AGE"], "{table}");
    let row: Vec<&str> = table
        .lines()
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(&row[..3], ["w1", "3", "blue"], "{table}");
    // The deprecated v1beta1 shows the same object at its version, with kube's warning.
    let old = control.kubectl(&[
        "get",
        "widgets.v1beta1.example.com",
        "w1",
        "-o",
        "jsonpath={.apiVersion} {.spec.size}",
    ]);
    assert_eq!(stdout(&old), "example.com/v1beta1 3", "{}", stderr(&old));
    assert!(
        stderr(&old).contains("example.com/v1beta1 Widget is deprecated"),
        "{}",
        stderr(&old)
    );
    // Status only through the status subresource.
    ok(control.kubectl(&[
        "patch",
        "wd",
        "w1",
        "--type=merge",
        "-p",
        r#"{"spec":{"size":4},"status":{"conditions":[{"type":"Ready","status":"False"}]}}"#,
    ]));
    assert_eq!(
        ok(control.kubectl(&["get", "wd", "w1", "-o", "jsonpath={.status}"])),
        ""
    );
    ok(control.kubectl(&[
        "patch",
        "wd",
        "w1",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"conditions":[{"type":"Ready","status":"True"}]}}"#,
    ]));
    let table = ok(control.kubectl(&["get", "widgets.example.com", "w1", "--no-headers"]));
    let row: Vec<&str> = table.split_whitespace().collect();
    assert_eq!(&row[..4], ["w1", "4", "blue", "True"], "{table}");

    // The scale subresource at the CRD's paths (kubectl scale; the Scale shows the status
    // ones).
    ok(control.kubectl(&["scale", "wd", "w1", "--replicas=6"]));
    ok(control.kubectl(&[
        "patch",
        "wd",
        "w1",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"size":6,"selector":"app=w1"}}"#,
    ]));
    let scale = ok(control.kubectl(&[
        "get",
        "--raw",
        "/apis/example.com/v1/namespaces/default/widgets/w1/scale",
    ]));
    let scale: serde_json::Value = serde_json::from_str(&scale).expect("a Scale");
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"]["replicas"], 6);
    assert_eq!(
        scale["status"],
        serde_json::json!({"replicas": 6, "selector": "app=w1"})
    );
    let refused = control.kubectl(&["scale", "wd", "w1", "--replicas=-1"]);
    assert!(!refused.status.success());
    ok(control.kubectl(&["scale", "wd", "w1", "--replicas=4"]));
    // A HorizontalPodAutoscaler reads a widget's scale like a Deployment's.
    let hpa = serde_json::json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "wh"},
        "spec": {"scaleTargetRef": {"apiVersion": "example.com/v1", "kind": "Widget", "name": "w1"},
            "minReplicas": 1, "maxReplicas": 5, "metrics": [{"type": "Resource",
                "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]}});
    ok(control.create_json("wh", &hpa));
    wait_until("the HPA reading the widget's scale", || {
        let status = ok(control.kubectl(&["get", "hpa", "wh", "-o", "json"]));
        let hpa: serde_json::Value = serde_json::from_str(&status).unwrap_or_default();
        let able = hpa["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "AbleToScale" && c["status"] == "True");
        able && hpa["status"]["currentReplicas"] == 4
    });

    // The schema: an unknown field under kubectl's strict validation, a type, a minimum, an
    // enum, a required field — each named.
    for (spec, field) in [
        ("{size: 2, colour: red}", "spec.colour"),
        ("{size: three}", "spec.size"),
        ("{size: 0}", "spec.size"),
        ("{size: 2, color: green}", "spec.color"),
        ("{color: red}", "spec.size"),
    ] {
        let bad = write(
            &control,
            "bad.yaml",
            &format!(
                "apiVersion: example.com/v1\nkind: Widget\nmetadata: {{name: bad}}\nspec: {spec}\n"
            ),
        );
        let out = control.kubectl(&["apply", "-f", &bad]);
        assert!(!out.status.success(), "{spec} was accepted");
        assert!(stderr(&out).contains(field), "{spec}: {}", stderr(&out));
    }

    // Server-side apply by two managers: each one's entry of the list map stays; a field the
    // other owns is a conflict.
    let apply_as = |manager: &str, spec: &str| {
        let path = write(
            &control,
            &format!("{manager}.yaml"),
            &format!(
                "apiVersion: example.com/v1\nkind: Widget\nmetadata: {{name: w3}}\nspec: {spec}\n"
            ),
        );
        control.kubectl(&[
            "apply",
            "--server-side",
            &format!("--field-manager={manager}"),
            "-f",
            &path,
        ])
    };
    ok(apply_as(
        "alice",
        "{size: 2, ports: [{name: http, port: 80}]}",
    ));
    ok(apply_as("bob", "{ports: [{name: metrics, port: 9090}]}"));
    let ports = ok(control.kubectl(&["get", "wd", "w3", "-o", "jsonpath={.spec.ports[*].name}"]));
    let mut names: Vec<&str> = ports.split_whitespace().collect();
    names.sort_unstable();
    assert_eq!(names, ["http", "metrics"]);
    let conflict = apply_as("bob", "{size: 5, ports: [{name: metrics, port: 9090}]}");
    assert!(!conflict.status.success());
    assert!(
        stderr(&conflict).contains("conflict"),
        "{}",
        stderr(&conflict)
    );
    ok(apply_as("alice", "{size: 2}"));
    let ports = ok(control.kubectl(&["get", "wd", "w3", "-o", "jsonpath={.spec.ports[*].name}"]));
    assert_eq!(
        ports, "metrics",
        "alice's port went with her intent, bob's stayed"
    );
    ok(control.kubectl(&["delete", "wd", "w3"]));

    // A ConfigMap owned by a widget goes with it.
    let uid = ok(control.kubectl(&["get", "wd", "w1", "-o", "jsonpath={.metadata.uid}"]));
    let owned = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "owned", "ownerReferences": [
            {"apiVersion": "example.com/v1", "kind": "Widget", "name": "w1", "uid": uid}]}});
    ok(control.create_json("owned", &owned));
    let w2 = write(
        &control,
        "w2.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w2}\nspec: {size: 9}\n",
    );
    ok(control.kubectl(&["apply", "-f", &w2]));

    // Restarted, the server serves the CRD's resource from its first request.
    control.restart();
    let names = ok(control.kubectl(&["get", "widgets", "-o", "name"]));
    assert_eq!(names, "widget.example.com/w1\nwidget.example.com/w2\n");
    assert!(ok(control.kubectl(&["get", "cm", "owned", "-o", "name"])).contains("owned"));

    ok(control.kubectl(&["delete", "wd", "w1"]));
    wait_until("the widget's ConfigMap collected", || {
        stderr(&control.kubectl(&["get", "cm", "owned"])).contains("NotFound")
    });

    // Deleting the CRD deletes its objects first, then the resource is gone.
    ok(control.kubectl(&["delete", "-f", &crd, "--timeout=30s"]));
    wait_until("widgets no longer served", || {
        let out = control.kubectl(&["get", "widgets"]);
        !out.status.success() && stderr(&out).contains("widgets")
    });
    assert!(stdout(&control.kubectl(&["get", "crd", "-o", "name"])).is_empty());
}

#[test]
fn crds_using_what_bosun_does_not_honour_or_kube_refuses_are_refused_naming_the_field() {
    let control = Control::start();
    let plain = "{type: object}";
    for (schema, extra, field, why) in [
        (
            "{type: object, allOf: [{x-kubernetes-validations: [{rule: 'true'}]}]}",
            "",
            "openAPIV3Schema.allOf",
            "not supported by bosun",
        ),
        (
            plain,
            "  conversion: {strategy: Webhook}\n",
            "spec.conversion.webhook.clientConfig",
            "required when strategy is set to Webhook",
        ),
    ] {
        let text = format!(
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {{name: gadgets.example.com}}\nspec:\n  group: example.com\n  names: {{kind: Gadget, plural: gadgets}}\n  scope: Cluster\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema: {{openAPIV3Schema: {schema}}}\n{extra}"
        );
        let path = write(&control, "gadget.yaml", &text);
        let out = control.kubectl(&["apply", "-f", &path]);
        assert!(!out.status.success(), "{field} was accepted");
        assert!(stderr(&out).contains(field), "{field}: {}", stderr(&out));
        assert!(stderr(&out).contains(why), "{}", stderr(&out));
    }
    // kube's own rules: the name must be <plural>.<group>.
    let path = write(
        &control,
        "misnamed.yaml",
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: things.example.com}\nspec:\n  group: example.com\n  names: {kind: Gadget, plural: gadgets}\n  scope: Cluster\n  versions:\n  - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}\n",
    );
    let out = control.kubectl(&["apply", "-f", &path]);
    assert!(stderr(&out).contains("metadata.name"), "{}", stderr(&out));
}

const ROUTE_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: routes.net.example.com}
spec:
  group: net.example.com
  names: {kind: Route, plural: routes}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    selectableFields: [{jsonPath: .spec.className}]
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-validations:
            - rule: self.minReplicas <= self.maxReplicas
              messageExpression: "'minReplicas (' + string(self.minReplicas) + ') must not exceed maxReplicas (' + string(self.maxReplicas) + ')'"
            - {rule: self.className == oldSelf.className, message: className is immutable}
            properties:
              className: {type: string, maxLength: 63}
              minReplicas: {type: integer}
              maxReplicas: {type: integer}
              hostnames:
                type: array
                maxItems: 16
                items: {type: string, maxLength: 253}
                x-kubernetes-validations:
                - {rule: "self.all(h, h.lowerAscii() == h)", message: hostnames are lower case, reason: FieldValueForbidden}
              address:
                type: string
                maxLength: 64
                x-kubernetes-validations:
                - {rule: "isIP(self) && ip(self).family() == 4", message: must be an IPv4 address}
"#;

fn route(name: &str, class: &str, min: i64, max: i64, host: &str) -> String {
    format!(
        "apiVersion: net.example.com/v1\nkind: Route\nmetadata: {{name: {name}}}\nspec: {{className: {class}, minReplicas: {min}, maxReplicas: {max}, hostnames: [{host}]}}\n"
    )
}

/// CEL validation rules (`x-kubernetes-validations`) with the real kubectl: a false rule is
/// refused in kube's words (messageExpression, reason, `fieldPath`), a transition rule compares
/// with the stored object, and a CRD whose rule does not compile or may cost too much is
/// refused naming the rule.
#[test]
fn cel_rules_validate_custom_objects_as_kube_does() {
    let control = Control::start();
    let crd = write(&control, "route-crd.yaml", ROUTE_CRD);
    ok(control.kubectl(&["apply", "-f", &crd]));
    ok(control.kubectl(&[
        "wait",
        "--for=condition=Established",
        "crd/routes.net.example.com",
        "--timeout=20s",
    ]));
    let good = write(
        &control,
        "r1.yaml",
        &route("r1", "public", 1, 3, "a.example.com"),
    );
    ok(control.kubectl(&["apply", "-f", &good]));

    let refused = |name: &str, text: &str, expected: &str| {
        let path = write(&control, name, text);
        let out = control.kubectl(&["apply", "-f", &path]);
        assert!(!out.status.success(), "{name} was accepted");
        assert!(stderr(&out).contains(expected), "{name}: {}", stderr(&out));
    };
    refused(
        "r2.yaml",
        &route("r2", "public", 5, 3, "a.example.com"),
        r#"spec: Invalid value: "object": minReplicas (5) must not exceed maxReplicas (3)"#,
    );
    refused(
        "r3.yaml",
        &route("r3", "public", 1, 3, "A.example.com"),
        "spec.hostnames: Forbidden: hostnames are lower case",
    );
    refused(
        "r5.yaml",
        &route("r5", "public", 1, 3, "a.example.com")
            .replace("hostnames:", "address: '::1', hostnames:"),
        r#"spec.address: Invalid value: "string": must be an IPv4 address"#,
    );
    // a transition rule: the class of a stored route may not change
    refused(
        "r1-edit.yaml",
        &route("r1", "internal", 1, 3, "a.example.com"),
        r#"spec: Invalid value: "object": className is immutable"#,
    );
    let out = control.kubectl(&[
        "patch",
        "route",
        "r1",
        "--type=merge",
        "-p",
        r#"{"spec":{"maxReplicas":0}}"#,
    ]);
    assert!(
        stderr(&out).contains("minReplicas (1) must not exceed maxReplicas (0)"),
        "{}",
        stderr(&out)
    );
    ok(control.kubectl(&[
        "patch",
        "route",
        "r1",
        "--type=merge",
        "-p",
        r#"{"spec":{"maxReplicas":9}}"#,
    ]));
    let max = control.kubectl(&["get", "route", "r1", "-o", "jsonpath={.spec.maxReplicas}"]);
    assert_eq!(stdout(&max), "9");

    // selectableFields: the class is a field label
    let good = write(
        &control,
        "r4.yaml",
        &route("r4", "internal", 1, 3, "b.example.com"),
    );
    ok(control.kubectl(&["apply", "-f", &good]));
    let selected = ok(control.kubectl(&[
        "get",
        "routes",
        "--field-selector",
        "spec.className=internal",
        "-o",
        "name",
    ]));
    assert_eq!(selected.trim(), "route.net.example.com/r4");
    let out = control.kubectl(&["get", "routes", "--field-selector", "spec.minReplicas=1"]);
    assert!(
        stderr(&out).contains("field label not supported: spec.minReplicas"),
        "{}",
        stderr(&out)
    );

    // CRDs whose rules kube would refuse
    let bad = ROUTE_CRD
        .replace("routes.net.example.com", "badroutes.net.example.com")
        .replace(
            "{kind: Route, plural: routes}",
            "{kind: BadRoute, plural: badroutes}",
        );
    let path = write(
        &control,
        "bad-crd.yaml",
        &bad.replace("self.minReplicas <=", "self.minReplicas.bogus() <="),
    );
    let out = control.kubectl(&["apply", "-f", &path]);
    assert!(
        stderr(&out).contains("x-kubernetes-validations[0].rule: Invalid value: apiextensions.ValidationRule{Rule:\"self.minReplicas.bogus() <= self.maxReplicas\"")
            && stderr(&out).contains("compilation failed: ERROR: <input>:1:18: undeclared reference to 'bogus' (in container '')"),
        "{}",
        stderr(&out)
    );
    let path = write(
        &control,
        "costly-crd.yaml",
        &bad.replace("maxItems: 16", "minItems: 0")
            .replace("maxLength: 253", "pattern: '.*'")
            .replace(
                "self.all(h, h.lowerAscii() == h)",
                "self.all(a, self.all(b, a == b || !a.endsWith(b)))",
            )
            .replace(".spec.className}", ".spec.hostnames}"),
    );
    let out = control.kubectl(&["apply", "-f", &path]);
    assert!(
        stderr(&out).contains("properties[hostnames].x-kubernetes-validations[0].rule: Forbidden: estimated rule cost exceeds budget by factor of")
            && stderr(&out).contains(r#"spec.versions[0].selectableFields[0].jsonPath: Invalid value: ".spec.hostnames": must point to a field of type string, boolean or integer"#),
        "{}",
        stderr(&out)
    );
}

/// Over a real etcd: the CRD is established and its objects served, and a second control
/// process on the same etcd serves them too (every process follows the CRDs, not only the
/// one running the controllers).
#[test]
fn custom_resources_over_etcd_are_served_by_every_control() {
    let etcd = etcd_cluster::Cluster::start(1);
    let endpoints = etcd.endpoints().join(",");
    let first = Control::start_with(&["--etcd-endpoints", &endpoints]);
    establish(&first);
    let widget = write(
        &first,
        "w.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: over-etcd}\nspec: {size: 2}\n",
    );
    ok(first.kubectl(&["apply", "-f", &widget]));
    let second = Control::start_with(&["--etcd-endpoints", &endpoints]);
    let table = ok(second.kubectl(&["get", "widgets", "--no-headers"]));
    let row: Vec<&str> = table.split_whitespace().collect();
    assert_eq!(&row[..3], ["over-etcd", "2", "blue"], "{table}");
}
