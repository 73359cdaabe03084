//! `PodLogOptions` from the query of `GET pods/{name}/log` (what kubectl sends: `container`,
//! `follow`, `previous`, `tailLines`, `sinceSeconds`, `sinceTime`, `timestamps`,
//! `limitBytes`), checked as kube-apiserver's `ValidatePodLogOptions` does, the container
//! chosen as its `validateContainer` does, and the kubelet query built from them. Pure.

use serde_json::Value;

use crate::status::{ApiError, FieldCause};

#[derive(Debug, Default, Clone, PartialEq)]
pub struct PodLogOptions {
    pub container: Option<String>,
    pub follow: bool,
    pub previous: bool,
    pub tail_lines: Option<i64>,
    pub since_seconds: Option<i64>,
    pub since_time: Option<String>,
    pub timestamps: bool,
    pub limit_bytes: Option<i64>,
}

fn bad(name: &str, value: &str) -> ApiError {
    ApiError::bad_request(format!(
        "invalid value {value:?} for query parameter {name}"
    ))
}

fn boolean(name: &str, value: &str) -> Result<bool, ApiError> {
    match value {
        "true" | "1" | "" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(bad(name, value)),
    }
}

fn integer(name: &str, value: &str) -> Result<i64, ApiError> {
    value.parse().map_err(|_| bad(name, value))
}

impl PodLogOptions {
    /// Decodes and validates the query of a log request for pod `pod`.
    pub fn parse(query: &str, pod: &str) -> Result<PodLogOptions, ApiError> {
        let mut o = PodLogOptions::default();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            let (name, value) = (name.as_ref(), value.as_ref());
            match name {
                "container" if !value.is_empty() => o.container = Some(value.to_owned()),
                "container" => {}
                // Request-level parameters of every API request (kubectl's
                // `--request-timeout`), not log options.
                "timeout" | "pretty" => {}
                "follow" => o.follow = boolean(name, value)?,
                "previous" => o.previous = boolean(name, value)?,
                "timestamps" => o.timestamps = boolean(name, value)?,
                "tailLines" => o.tail_lines = Some(integer(name, value)?),
                "sinceSeconds" => o.since_seconds = Some(integer(name, value)?),
                "limitBytes" => o.limit_bytes = Some(integer(name, value)?),
                "sinceTime" => {
                    chrono::DateTime::parse_from_rfc3339(value).map_err(|_| bad(name, value))?;
                    o.since_time = Some(value.to_owned());
                }
                other => {
                    return Err(ApiError::bad_request(format!(
                        "query parameter {other:?} is not supported for pods/log"
                    )))
                }
            }
        }
        o.validate(pod)?;
        Ok(o)
    }

    fn validate(&self, pod: &str) -> Result<(), ApiError> {
        let mut causes = Vec::new();
        if let Some(n) = self.tail_lines.filter(|n| *n < 0) {
            causes.push(FieldCause::invalid(
                "tailLines",
                &n.to_string(),
                "must be greater than or equal to 0",
            ));
        }
        if let Some(n) = self.limit_bytes.filter(|n| *n < 1) {
            causes.push(FieldCause::invalid(
                "limitBytes",
                &n.to_string(),
                "must be greater than 0",
            ));
        }
        if let Some(n) = self.since_seconds.filter(|n| *n < 1) {
            causes.push(FieldCause::invalid(
                "sinceSeconds",
                &n.to_string(),
                "must be greater than 0",
            ));
        }
        if self.since_seconds.is_some() && self.since_time.is_some() {
            causes.push(FieldCause {
                field: String::new(),
                reason: "FieldValueForbidden",
                message: "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified"
                    .to_owned(),
            });
        }
        match causes.is_empty() {
            true => Ok(()),
            false => Err(ApiError::invalid(
                "PodLogOptions",
                "PodLogOptions",
                pod,
                &causes,
            )),
        }
    }

    /// The kubelet's `/containerLogs` query for these options.
    pub fn kubelet_query(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        let mut flag = |name: &str, on: bool| {
            if on {
                q.append_pair(name, "true");
            }
        };
        flag("follow", self.follow);
        flag("previous", self.previous);
        flag("timestamps", self.timestamps);
        for (name, value) in [
            ("tailLines", self.tail_lines),
            ("sinceSeconds", self.since_seconds),
            ("limitBytes", self.limit_bytes),
        ] {
            if let Some(v) = value {
                q.append_pair(name, &v.to_string());
            }
        }
        if let Some(t) = &self.since_time {
            q.append_pair("sinceTime", t);
        }
        q.finish()
    }
}

fn names(pod: &Value, field: &str) -> Vec<String> {
    pod["spec"][field]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect()
}

/// The container to read: the one asked for (it must exist), else the pod's only one
/// (kube-apiserver's texts otherwise).
pub fn choose_container(pod: &Value, asked: Option<&str>) -> Result<String, ApiError> {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let (main, init, ephemeral) = (
        names(pod, "containers"),
        names(pod, "initContainers"),
        names(pod, "ephemeralContainers"),
    );
    if let Some(asked) = asked {
        return match main
            .iter()
            .chain(&init)
            .chain(&ephemeral)
            .any(|c| c == asked)
        {
            true => Ok(asked.to_owned()),
            false => Err(ApiError::bad_request(format!(
                "container {asked} is not valid for pod {name}"
            ))),
        };
    }
    match main.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}"
        ))),
        several => {
            let mut text = format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                several.join(" ")
            );
            if !init.is_empty() {
                text += &format!(" or one of the init containers: [{}]", init.join(" "));
            }
            Err(ApiError::bad_request(text))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kubectls_parameters_round_trip_to_the_kubelet() {
        let o = PodLogOptions::parse(
            "container=c&follow=true&tailLines=5&timestamps=true&limitBytes=100&sinceTime=2026-12-02T10%3A00%3A00Z",
            "p",
        )
        .expect("valid");
        assert_eq!(o.container.as_deref(), Some("c"));
        assert_eq!(
            o.kubelet_query(),
            "follow=true&timestamps=true&tailLines=5&limitBytes=100&sinceTime=2026-12-02T10%3A00%3A00Z"
        );
    }

    #[test]
    fn invalid_options_get_kubes_texts() {
        let e = PodLogOptions::parse("tailLines=-1", "p").expect_err("negative");
        assert_eq!(e.code, http::StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            e.message,
            "PodLogOptions \"p\" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0"
        );
        let e = PodLogOptions::parse("sinceSeconds=5&sinceTime=2026-12-02T10:00:00Z", "p")
            .expect_err("both");
        assert!(
            e.message
                .contains("at most one of `sinceTime` or `sinceSeconds`"),
            "{}",
            e.message
        );
        let e = PodLogOptions::parse("bogus=1", "p").expect_err("unknown");
        assert_eq!(e.code, http::StatusCode::BAD_REQUEST);
        assert!(PodLogOptions::parse("limitBytes=x", "p").is_err());
    }

    #[test]
    fn containers_are_chosen_like_kube_apiserver() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {
            "initContainers": [{"name": "setup"}],
            "containers": [{"name": "a"}, {"name": "b"}],
        }});
        assert_eq!(
            choose_container(&pod, None).expect_err("several").message,
            "a container name must be specified for pod p, choose one of: [a b] or one of the init containers: [setup]"
        );
        assert_eq!(
            choose_container(&pod, Some("nope"))
                .expect_err("missing")
                .message,
            "container nope is not valid for pod p"
        );
        assert_eq!(
            choose_container(&pod, Some("setup")).expect("init"),
            "setup"
        );
        let one = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}});
        assert_eq!(choose_container(&one, None).expect("only"), "a");
    }
}
