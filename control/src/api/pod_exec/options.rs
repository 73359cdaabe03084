//! `PodExecOptions` from the query (kube's conversion from URL values): `command` repeated,
//! `container`, and the booleans `stdin`, `stdout`, `stderr`, `tty` (Go's `ParseBool`
//! spellings; anything else is a 400). The kubelet gets them as kube-apiserver's
//! `streamParams` writes them: `input`, `output`, `error`, `tty` = `1`, then the commands.

use crate::status::ApiError;

/// What an exec asks for.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PodExecOptions {
    pub command: Vec<String>,
    pub container: Option<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// Go's `strconv.ParseBool`.
fn parse_bool(key: &str, value: &str) -> Result<bool, ApiError> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        other => Err(ApiError::bad_request(format!(
            "{key}: strconv.ParseBool: parsing {other:?}: invalid syntax"
        ))),
    }
}

impl PodExecOptions {
    /// Parses the query string; unknown parameters are ignored, as kube's decoder does.
    pub fn parse(raw_query: &str) -> Result<PodExecOptions, ApiError> {
        let mut o = PodExecOptions::default();
        for (key, value) in form_urlencoded::parse(raw_query.as_bytes()) {
            match key.as_ref() {
                "command" => o.command.push(value.into_owned()),
                "container" => o.container = Some(value.into_owned()).filter(|c| !c.is_empty()),
                "stdin" => o.stdin = parse_bool(&key, &value)?,
                "stdout" => o.stdout = parse_bool(&key, &value)?,
                "stderr" => o.stderr = parse_bool(&key, &value)?,
                "tty" => o.tty = parse_bool(&key, &value)?,
                _ => {}
            }
        }
        Ok(o)
    }

    /// The options as admission shows them: a v1 PodExecOptions, or PodAttachOptions (no
    /// command) for `attach`.
    pub fn object(&self, attach: bool) -> serde_json::Value {
        let mut object = serde_json::json!({
            "apiVersion": "v1",
            "kind": if attach { "PodAttachOptions" } else { "PodExecOptions" },
            "stdin": self.stdin, "stdout": self.stdout, "stderr": self.stderr, "tty": self.tty,
        });
        if let Some(container) = &self.container {
            object["container"] = serde_json::json!(container);
        }
        if !attach {
            object["command"] = serde_json::json!(self.command);
        }
        object
    }

    /// The kubelet's query.
    pub fn kubelet_query(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (on, key) in [
            (self.stdin, "input"),
            (self.stdout, "output"),
            (self.stderr, "error"),
            (self.tty, "tty"),
        ] {
            if on {
                q.append_pair(key, "1");
            }
        }
        for c in &self.command {
            q.append_pair("command", c);
        }
        q.finish()
    }
}

/// A port-forward's options as admission shows them: a v1 PodPortForwardOptions with the
/// query's `ports` (kubectl sends them in stream headers, so usually none).
pub fn port_forward_object(raw_query: &str) -> serde_json::Value {
    let ports: Vec<u64> = form_urlencoded::parse(raw_query.as_bytes())
        .filter(|(key, _)| key == "ports")
        .flat_map(|(_, value)| {
            let listed: Vec<u64> = value
                .split(',')
                .filter_map(|p| p.trim().parse().ok())
                .collect();
            listed
        })
        .collect();
    let mut object = serde_json::json!({"apiVersion": "v1", "kind": "PodPortForwardOptions"});
    if !ports.is_empty() {
        object["ports"] = serde_json::json!(ports);
    }
    object
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectls_query_becomes_the_kubelets() {
        let o = PodExecOptions::parse(
            "command=sh&command=-c&command=echo+hi%3B+exit+3&container=c&stdin=true&stdout=true&stderr=true&tty=false",
        )
        .expect("valid");
        assert_eq!(o.command, ["sh", "-c", "echo hi; exit 3"]);
        assert_eq!(o.container.as_deref(), Some("c"));
        assert_eq!(
            o.kubelet_query(),
            "input=1&output=1&error=1&command=sh&command=-c&command=echo+hi%3B+exit+3"
        );
        let e = PodExecOptions::parse("stdin=yes").expect_err("not a bool");
        assert_eq!(e.code, http::StatusCode::BAD_REQUEST);
    }
}
