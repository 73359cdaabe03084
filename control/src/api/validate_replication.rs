//! kube-apiserver's semantic rules for a ReplicationController (`ValidateReplicationControllerSpec`),
//! in its words: replicas not negative, a non-empty selector (defaulted from the template's
//! labels) that the template's labels match, a template, restart policy Always.

use serde_json::Value;

use super::validate_storage::not_supported;
use super::validate_workload::{go_map, pod_template_spec, replicas};
use crate::status::FieldCause;

pub(super) fn replication_controller(object: &Value, causes: &mut Vec<FieldCause>) {
    let spec = &object["spec"];
    replicas(spec, causes);
    let selector = spec["selector"].as_object().filter(|m| !m.is_empty());
    if selector.is_none() {
        causes.push(FieldCause::required("spec.selector"));
    }
    let template = &spec["template"];
    if !template.is_object() {
        causes.push(FieldCause::required("spec.template"));
        return;
    }
    let labels = &template["metadata"]["labels"];
    if let Some(wanted) = selector {
        if wanted.iter().any(|(k, v)| labels.get(k) != Some(v)) {
            causes.push(FieldCause::invalid(
                "spec.template.metadata.labels",
                &go_map(labels),
                "selector does not match template labels",
            ));
        }
    }
    pod_template_spec(&template["spec"], "spec.template.spec", causes);
    let policy = template["spec"]["restartPolicy"]
        .as_str()
        .unwrap_or("Always");
    if policy != "Always" {
        causes.push(not_supported(
            "spec.template.spec.restartPolicy",
            policy,
            &["Always"],
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn causes(object: Value) -> Vec<String> {
        let mut causes = Vec::new();
        replication_controller(&object, &mut causes);
        causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn kubes_rules_in_kubes_words() {
        let good = json!({"spec": {"replicas": 2, "selector": {"app": "web"},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        assert_eq!(causes(good.clone()), Vec::<String>::new());

        let mut bad = good.clone();
        bad["spec"]["replicas"] = json!(-1);
        bad["spec"]["selector"] = json!({"app": "db"});
        bad["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        assert_eq!(
            causes(bad),
            [
                "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
                "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: selector does not match template labels",
                "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
            ]
        );
        assert_eq!(
            causes(json!({"spec": {}})),
            [
                "spec.selector: Required value",
                "spec.template: Required value"
            ]
        );
    }
}
