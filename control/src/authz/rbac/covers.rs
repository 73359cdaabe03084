//! kube's escalation check (`pkg/registry/rbac/validation.Covers`): the rules one may grant
//! are those one holds — each granted rule is broken down to one verb, group, resource, name
//! or URL at a time, and every piece must be covered by a held rule.

use super::Rule;

fn has(list: &[String], item: &str) -> bool {
    list.iter().any(|i| i == item)
}

fn has_all(list: &[String], items: &[String]) -> bool {
    items.iter().all(|i| has(list, i))
}

/// One rule per verb × group × resource × name, and per verb × URL (kube's BreakdownRule).
fn breakdown(rule: &Rule) -> Vec<Rule> {
    let one = |s: &String| vec![s.clone()];
    let mut out = Vec::new();
    for group in &rule.api_groups {
        for resource in &rule.resources {
            for verb in &rule.verbs {
                let base = Rule {
                    verbs: one(verb),
                    api_groups: one(group),
                    resources: one(resource),
                    ..Rule::default()
                };
                for name in &rule.resource_names {
                    out.push(Rule {
                        resource_names: one(name),
                        ..base.clone()
                    });
                }
                if rule.resource_names.is_empty() {
                    out.push(base);
                }
            }
        }
    }
    for url in &rule.non_resource_urls {
        for verb in &rule.verbs {
            out.push(Rule {
                verbs: one(verb),
                non_resource_urls: one(url),
                ..Rule::default()
            });
        }
    }
    out
}

fn resources_covered(held: &[String], wanted: &[String]) -> bool {
    has(held, "*")
        || wanted.iter().all(|path| {
            has(held, path)
                || path
                    .split_once('/')
                    .is_some_and(|(_, sub)| has(held, &format!("*/{sub}")))
        })
}

fn urls_covered(held: &[String], wanted: &[String]) -> bool {
    wanted.iter().all(|url| {
        held.iter().any(|h| {
            h == url
                || h.strip_suffix('*')
                    .is_some_and(|prefix| url.starts_with(prefix.trim_end_matches('*')))
        })
    })
}

/// Whether `held` covers the single-piece rule `piece` (kube's ruleCovers).
fn rule_covers(held: &Rule, piece: &Rule) -> bool {
    let names = match piece.resource_names.is_empty() {
        true => held.resource_names.is_empty(),
        false => {
            held.resource_names.is_empty() || has_all(&held.resource_names, &piece.resource_names)
        }
    };
    (has(&held.verbs, "*") || has_all(&held.verbs, &piece.verbs))
        && (has(&held.api_groups, "*") || has_all(&held.api_groups, &piece.api_groups))
        && resources_covered(&held.resources, &piece.resources)
        && urls_covered(&held.non_resource_urls, &piece.non_resource_urls)
        && names
}

/// The pieces of `granted` that no rule of `held` covers (empty: all are covered).
pub fn uncovered<'a>(held: impl Iterator<Item = &'a Rule> + Clone, granted: &[Rule]) -> Vec<Rule> {
    granted
        .iter()
        .flat_map(breakdown)
        .filter(|piece| !held.clone().any(|h| rule_covers(h, piece)))
        .collect()
}

/// Whether `held` covers every rule of `granted`.
pub fn covers<'a>(held: impl Iterator<Item = &'a Rule> + Clone, granted: &[Rule]) -> bool {
    uncovered(held, granted).is_empty()
}

/// A rule as kube prints it in an escalation refusal (`CompactString`):
/// `{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}`.
pub fn compact(rule: &Rule) -> String {
    let quoted = |items: &[String]| {
        let parts: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
        format!("[{}]", parts.join(" "))
    };
    let fields = [
        ("APIGroups", &rule.api_groups),
        ("Resources", &rule.resources),
        ("NonResourceURLs", &rule.non_resource_urls),
        ("ResourceNames", &rule.resource_names),
        ("Verbs", &rule.verbs),
    ];
    let parts: Vec<String> = fields
        .iter()
        .filter(|(_, items)| !items.is_empty())
        .map(|(name, items)| format!("{name}:{}", quoted(items)))
        .collect();
    format!("{{{}}}", parts.join(", "))
}
