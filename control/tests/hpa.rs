//! HorizontalPodAutoscaler validation through the real kubectl: metric types bosun's HPA
//! controller does not carry out (External, ContainerResource) are refused with an error
//! naming the field, and a Resource metric on a Deployment is accepted. The scaling itself is
//! covered by the end-to-end `autoscale` test and the controller's unit tests.

mod common;

use common::{ok, stderr, Control};

const HPA: &str = "apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: NAME}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 3
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
";

#[test]
fn unsupported_metric_types_are_refused_by_field() {
    let control = Control::start();
    let create = |name: &str, extra: &str| {
        let file = control.dir.path().join(format!("{name}.yaml"));
        std::fs::write(&file, format!("{}{extra}", HPA.replace("NAME", name))).expect("write");
        control.kubectl(&["create", "-f", file.to_str().expect("path")])
    };
    ok(create("cpu", ""));
    let external = create(
        "external",
        "  - type: External
    external:
      metric: {name: queue}
      target: {type: Value, value: \"10\"}
",
    );
    let err = stderr(&external);
    assert!(!external.status.success(), "{err}");
    assert!(
        err.contains("spec.metrics[1].type") && err.contains("Resource metrics only"),
        "{err}"
    );
    let container = create(
        "container",
        "  - type: ContainerResource
    containerResource:
      name: cpu
      container: app
      target: {type: Utilization, averageUtilization: 50}
",
    );
    let err = stderr(&container);
    assert!(
        !container.status.success() && err.contains("spec.metrics[1].type"),
        "{err}"
    );
}
