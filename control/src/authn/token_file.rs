//! Static bearer tokens (`--token-auth-file`), in kube-apiserver's CSV format: one
//! `token,user,uid,"group1,group2"` per line (groups optional; `#` comments and blank lines
//! ignored). A malformed line fails the start, naming its line number.

use std::collections::HashMap;
use std::path::Path;

use super::Identity;

/// Tokens and who they authenticate.
#[derive(Default)]
pub struct TokenFile {
    tokens: HashMap<String, Identity>,
}

/// Why the token file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} line {line}: {why}")]
    Line {
        path: String,
        line: usize,
        why: &'static str,
    },
}

impl TokenFile {
    pub fn load(path: &Path) -> Result<TokenFile, TokenFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Read {
            path: path.display().to_string(),
            source,
        })?;
        TokenFile::parse(&text).map_err(|(line, why)| TokenFileError::Line {
            path: path.display().to_string(),
            line,
            why,
        })
    }

    /// Parses the CSV text; errors carry the 1-based line number.
    pub fn parse(text: &str) -> Result<TokenFile, (usize, &'static str)> {
        let mut tokens = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields = split_csv(line);
            let (token, user) = match fields.as_slice() {
                [token, user, ..] if !token.is_empty() && !user.is_empty() => (token, user),
                _ => return Err((i + 1, "expected token,user,uid[,\"groups\"]")),
            };
            let groups = fields
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            let identity = Identity {
                user: user.clone(),
                uid: fields.get(2).cloned().unwrap_or_default(),
                groups,
                ..Default::default()
            };
            if tokens.insert(token.clone(), identity).is_some() {
                return Err((i + 1, "a token listed twice"));
            }
        }
        Ok(TokenFile { tokens })
    }

    pub fn find(&self, token: &str) -> Option<&Identity> {
        self.tokens.get(token)
    }
}

/// Splits one CSV line; double quotes group a field with commas.
fn split_csv(line: &str) -> Vec<String> {
    let (mut fields, mut field, mut quoted) = (Vec::new(), String::new(), false);
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut field).trim().to_owned()),
            c => field.push(c),
        }
    }
    fields.push(field.trim().to_owned());
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_name_token_user_and_groups() {
        let file = TokenFile::parse(
            "# comment\nt1,alice,1,\"system:masters,dev\"\n\nt2,system:node:n1,2,system:nodes\n",
        )
        .unwrap();
        let alice = file.find("t1").unwrap();
        assert_eq!(alice.user, "alice");
        assert_eq!(alice.uid, "1");
        assert_eq!(alice.groups, ["system:masters", "dev"]);
        assert_eq!(file.find("t2").unwrap().node_name(), Some("n1"));
        assert!(file.find("t3").is_none());
        assert_eq!(
            TokenFile::parse("only-a-token").err(),
            Some((1, "expected token,user,uid[,\"groups\"]"))
        );
        assert_eq!(TokenFile::parse("a,b,1\na,c,2").err().map(|e| e.0), Some(2));
    }
}
