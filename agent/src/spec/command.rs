//! What a container runs: Kubernetes' rules for combining the image's Entrypoint/Cmd with the
//! Pod's `command`/`args`, and `$(VAR)` expansion. Pure string work; it never looks at the
//! image store or the process environment.

use std::collections::BTreeMap;

use super::env_source::EnvVarSource;
use super::pod::EnvVar;

/// The argv a container runs, by Kubernetes' rules: `command` replaces the image Entrypoint
/// and drops its Cmd; `args` replace the Cmd. No variable expansion (see
/// [`resolve_command_with_env`]).
pub fn resolve_command(
    image_entrypoint: &[String],
    image_cmd: &[String],
    command: &[String],
    args: &[String],
) -> Vec<String> {
    let (head, tail) = match (command.is_empty(), args.is_empty()) {
        (false, _) => (command, args),
        (true, false) => (image_entrypoint, args),
        (true, true) => (image_entrypoint, image_cmd),
    };
    head.iter().chain(tail).cloned().collect()
}

/// [`resolve_command`] after expanding `$(VAR)` in the container's `command` and `args` (never
/// in the image's Entrypoint/Cmd, as Kubernetes does).
pub fn resolve_command_with_env(
    image_entrypoint: &[String],
    image_cmd: &[String],
    command: &[String],
    args: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Vec<String> {
    let expand =
        |list: &[String]| -> Vec<String> { list.iter().map(|s| expand_vars(s, env)).collect() };
    resolve_command(image_entrypoint, image_cmd, &expand(command), &expand(args))
}

/// Expands `$(VAR)` references the way Kubernetes does: `$$` is a literal `$`, references to
/// unknown variables and unterminated `$(` are left verbatim, a `$` followed by anything else
/// is kept as is.
pub fn expand_vars(s: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(escaped) = after.strip_prefix('$') {
            out.push('$');
            rest = escaped;
        } else if let Some(reference) = after.strip_prefix('(') {
            match reference.find(')') {
                Some(close) => {
                    let name = &reference[..close];
                    match env(name) {
                        Some(value) => out.push_str(&value),
                        None => out.push_str(&format!("$({name})")),
                    }
                    rest = &reference[close + 1..];
                }
                None => {
                    out.push_str(&rest[dollar..]);
                    rest = "";
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The container's environment with literal values, in order, each value expanded against the
/// variables defined before it (later duplicates win, as in Kubernetes). Entries that use
/// `valueFrom` are skipped (see [`resolve_env_with`]).
pub fn resolve_env(vars: &[EnvVar]) -> Vec<(String, String)> {
    let skip = |_: &EnvVarSource| Ok::<_, ()>(None);
    resolve_env_with(Vec::new(), vars, skip).unwrap_or_default()
}

/// kubelet's order: `base` (what `envFrom` gave), then `vars` in order — a literal value
/// expanded against the variables defined so far, a `valueFrom` as `from` resolves it (not
/// expanded; `None` leaves the variable out, an optional reference that is missing). Later
/// duplicates win. The first error of `from` is returned.
pub fn resolve_env_with<E>(
    base: Vec<(String, String)>,
    vars: &[EnvVar],
    mut from: impl FnMut(&EnvVarSource) -> Result<Option<String>, E>,
) -> Result<Vec<(String, String)>, E> {
    let mut resolved: Vec<(String, String)> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut set =
        |resolved: &mut Vec<(String, String)>, name: &str, value: String| match index.get(name) {
            Some(&i) => resolved[i].1 = value,
            None => {
                index.insert(name.to_string(), resolved.len());
                resolved.push((name.to_string(), value));
            }
        };
    for (k, v) in base {
        set(&mut resolved, &k, v);
    }
    for var in vars {
        let value = match &var.value_from {
            Some(source) => match from(source)? {
                Some(v) => v,
                None => continue,
            },
            None => {
                let current = resolved.clone();
                let lookup = |name: &str| {
                    current
                        .iter()
                        .rev()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.clone())
                };
                expand_vars(var.value.as_deref().unwrap_or(""), &lookup)
            }
        };
        set(&mut resolved, &var.name, value);
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn command_and_args_combine_with_the_image_like_kubernetes() {
        let entrypoint = strings(&["/entry"]);
        let cmd = strings(&["--cmd"]);
        let table: [(&[&str], &[&str], &[&str]); 4] = [
            (&[], &[], &["/entry", "--cmd"]),
            (&["/bin/sh"], &[], &["/bin/sh"]),
            (&[], &["-x"], &["/entry", "-x"]),
            (&["/bin/sh"], &["-c", "true"], &["/bin/sh", "-c", "true"]),
        ];
        for (command, args, want) in table {
            let got = resolve_command(&entrypoint, &cmd, &strings(command), &strings(args));
            assert_eq!(got, strings(want), "command={command:?} args={args:?}");
        }
    }

    #[test]
    fn empty_image_config_yields_only_what_the_pod_gives() {
        assert!(resolve_command(&[], &[], &[], &[]).is_empty());
        assert_eq!(
            resolve_command(&[], &[], &[], &strings(&["a"])),
            strings(&["a"])
        );
    }

    #[test]
    fn variables_expand_like_kubernetes() {
        let env = |name: &str| match name {
            "A" => Some("alpha".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        let table = [
            ("$(A)", "alpha"),
            ("x$(A)y$(A)", "xalphayalpha"),
            ("$(EMPTY)", ""),
            ("$(UNKNOWN)", "$(UNKNOWN)"),
            ("$$(A)", "$(A)"),
            ("$$$(A)", "$alpha"),
            ("$$", "$"),
            ("$", "$"),
            ("a$", "a$"),
            ("$A", "$A"),
            ("$(A", "$(A"),
            ("x $(A $(A)", "x $(A $(A)"), // the first `)` closes the reference "A $(A"
            ("$()", "$()"),
            ("ü$(A)é", "üalphaé"),
            ("$é", "$é"),
            ("no vars", "no vars"),
        ];
        for (input, want) in table {
            assert_eq!(expand_vars(input, &env), want, "{input}");
        }
    }

    #[test]
    fn pod_command_and_args_expand_but_image_config_does_not() {
        let env = |name: &str| (name == "PORT").then(|| "8080".to_string());
        let got = resolve_command_with_env(
            &strings(&["/serve", "$(PORT)"]),
            &[],
            &[],
            &strings(&["--port=$(PORT)", "$$(PORT)"]),
            &env,
        );
        assert_eq!(
            got,
            strings(&["/serve", "$(PORT)", "--port=8080", "$(PORT)"])
        );
    }

    #[test]
    fn env_values_expand_against_earlier_variables() {
        let var = |name: &str, value: &str| EnvVar {
            name: name.into(),
            value: Some(value.into()),
            value_from: None,
        };
        let from_secret = EnvVar {
            name: "SECRET".into(),
            value: None,
            value_from: Some(crate::spec::EnvVarSource {
                secret_key_ref: Some(crate::spec::KeySelector {
                    name: "s".into(),
                    key: "k".into(),
                    optional: None,
                }),
                ..crate::spec::EnvVarSource::default()
            }),
        };
        let vars = [
            var("HOST", "db"),
            var("URL", "http://$(HOST):$(PORT)/"),
            var("PORT", "5432"),
            from_secret,
            var("HOST", "db2"),
        ];
        let got = resolve_env(&vars);
        let want = [
            ("HOST", "db2"),
            ("URL", "http://db:$(PORT)/"),
            ("PORT", "5432"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, want);
    }
}
