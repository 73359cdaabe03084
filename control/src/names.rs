//! Generated names as Kubernetes makes them: random characters from apimachinery's
//! `rand.String` alphabet (no vowels, no digits that read as letters), appended to a
//! `generateName` cut so the whole name stays within 63 characters.

/// Characters of generated names and hashes (`rand.SafeEncodeString`'s alphabet).
pub const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Length of the random part of a generated name.
pub const SUFFIX_LEN: usize = 5;

/// The longest `generateName` kept whole (kube's `maxGeneratedNameLength`: 63 minus the
/// suffix).
const MAX_GENERATED_PREFIX: usize = 63 - SUFFIX_LEN;

/// `len` random characters of [`SAFE_ALPHABET`].
pub fn random_suffix(len: usize) -> String {
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for b in uuid::Uuid::new_v4().as_bytes() {
            // 256 = 9 * 27 + 13: bytes past the last whole multiple would favour the first
            // 13 characters, so they are skipped.
            if usize::from(*b) < 9 * SAFE_ALPHABET.len() && out.len() < len {
                out.push(char::from(
                    SAFE_ALPHABET[usize::from(*b) % SAFE_ALPHABET.len()],
                ));
            }
        }
    }
    out
}

/// A name made from `generate_name`: the prefix (cut to 58 characters) and five random
/// characters.
pub fn generate(generate_name: &str) -> String {
    let mut end = generate_name.len().min(MAX_GENERATED_PREFIX);
    while !generate_name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{}", &generate_name[..end], random_suffix(SUFFIX_LEN))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_use_only_the_safe_alphabet_and_vary() {
        let suffixes: std::collections::HashSet<String> =
            (0..200).map(|_| random_suffix(SUFFIX_LEN)).collect();
        assert!(suffixes.len() > 190, "{}", suffixes.len());
        for s in &suffixes {
            assert_eq!(s.len(), SUFFIX_LEN);
            assert!(s.bytes().all(|b| SAFE_ALPHABET.contains(&b)), "{s}");
        }
        // Every character turns up (27 characters, 1000 draws).
        let all: std::collections::HashSet<u8> = random_suffix(1000).bytes().collect();
        assert_eq!(all.len(), SAFE_ALPHABET.len());
    }

    #[test]
    fn long_prefixes_are_cut_so_the_name_fits_63_characters() {
        let name = generate("web-");
        assert!(name.starts_with("web-") && name.len() == 9, "{name}");
        let long = "a".repeat(70);
        let name = generate(&long);
        assert_eq!(name.len(), 63);
        assert!(name.starts_with(&"a".repeat(58)));
        // A cut never splits a character.
        let wide = "é".repeat(40);
        assert!(generate(&wide).len() <= 63);
    }
}
