//! Which keys one watch follows: every key under a prefix, or only the keys under it whose
//! last segment is one name — the objects of that name in every namespace. The hubs hand an
//! event only to the subscriptions whose keys hold it, so a watch of one name is not woken
//! by the other writes under its prefix, as kube-apiserver's watch cache triggers a watch
//! selecting `metadata.name` only for that object.

/// The keys of one watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WatchKeys {
    pub prefix: String,
    /// Only keys whose last `/`-separated segment is this.
    pub name: Option<String>,
}

impl WatchKeys {
    /// Every key under `prefix`.
    pub fn under(prefix: &str) -> WatchKeys {
        WatchKeys {
            prefix: prefix.to_owned(),
            name: None,
        }
    }

    /// The keys under `prefix` whose last segment is `name`.
    pub fn named(prefix: &str, name: &str) -> WatchKeys {
        WatchKeys {
            prefix: prefix.to_owned(),
            name: Some(name.to_owned()),
        }
    }

    pub fn contains(&self, key: &str) -> bool {
        key.starts_with(&self.prefix)
            && self
                .name
                .as_deref()
                .is_none_or(|name| key.rsplit('/').next() == Some(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_narrows_the_prefix_to_the_last_segment() {
        let all = WatchKeys::under("/registry/configmaps/");
        let named = WatchKeys::named("/registry/configmaps/", "kube-root-ca.crt");
        for (key, in_all, in_named) in [
            ("/registry/configmaps/a/kube-root-ca.crt", true, true),
            ("/registry/configmaps/b/kube-root-ca.crt", true, true),
            ("/registry/configmaps/a/kube-root-ca.crt-2", true, false),
            ("/registry/configmaps/a/other", true, false),
            ("/registry/secrets/a/kube-root-ca.crt", false, false),
        ] {
            assert_eq!(all.contains(key), in_all, "{key}");
            assert_eq!(named.contains(key), in_named, "{key}");
        }
    }
}
