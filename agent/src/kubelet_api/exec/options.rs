//! The query of `/exec/{ns}/{pod}/{container}` as kubelet reads it (`remotecommand.NewOptions`
//! and the `command` values): `input`, `output`, `error` and `tty` are on when `1`; with a
//! tty there is no separate stderr; at least one stream and one command word are needed.

/// What an exec asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOptions {
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// Parses the query string; the error is kubelet's text.
pub fn parse(query: &str) -> Result<ExecOptions, String> {
    let mut o = ExecOptions {
        command: Vec::new(),
        stdin: false,
        stdout: false,
        stderr: false,
        tty: false,
    };
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let on = value == "1";
        match key.as_ref() {
            "command" => o.command.push(value.into_owned()),
            "input" => o.stdin = on,
            "output" => o.stdout = on,
            "error" => o.stderr = on,
            "tty" => o.tty = on,
            _ => {}
        }
    }
    if o.tty {
        o.stderr = false;
    }
    if !o.stdin && !o.stdout && !o.stderr {
        return Err("you must specify at least 1 of stdin, stdout, stderr".to_owned());
    }
    if o.command.is_empty() {
        return Err("you must specify at least one command for the container".to_owned());
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelets_parameters() {
        let o = parse("command=sh&command=-c&command=echo+a%20b&output=1&error=1&tty=1")
            .expect("valid");
        assert_eq!(o.command, ["sh", "-c", "echo a b"]);
        assert!(o.stdout && o.tty && !o.stdin);
        assert!(!o.stderr, "a tty has no separate stderr");
        assert_eq!(
            parse("command=ls").expect_err("no stream"),
            "you must specify at least 1 of stdin, stdout, stderr"
        );
        assert!(parse("input=1").is_err());
    }
}
