//! Encryption at rest for chosen key prefixes (Secrets), as a wrapper around any backend:
//! values under those prefixes are stored as `k8s:enc:aesgcm:v1:bosun:` + a random 96-bit
//! nonce + AES-256-GCM ciphertext, and decrypted on every read and watch event. A value
//! without the prefix (written before encryption was on) is read as it is; one that does not
//! decrypt is an error naming the key, never an empty or missing value.
//!
//! The key is 32 random bytes in a file (0600) made on first start; every control process of
//! one cluster needs the same file.

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Nonce};
use async_trait::async_trait;
use bytes::Bytes;

use super::{
    Deleted, Error, Event, KeyValue, Limits, ListOptions, ListPage, Op, Result, Store, WatchStream,
};

/// What an encrypted value starts with (kube-apiserver's envelope style).
const MAGIC: &[u8] = b"k8s:enc:aesgcm:v1:bosun:";
const NONCE_BYTES: usize = 12;

/// The AES-256-GCM key of the data at rest.
#[derive(Clone)]
pub struct EncryptionKey(Aes256Gcm);

impl EncryptionKey {
    /// Loads the key from `path`, or makes a new random one there (0600) if there is none.
    pub fn load_or_create(path: &Path) -> std::io::Result<EncryptionKey> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Aes256Gcm::generate_key(&mut OsRng);
                write_new(path, key.as_slice())?;
                key.to_vec()
            }
            Err(e) => return Err(e),
        };
        Aes256Gcm::new_from_slice(&bytes)
            .map(EncryptionKey)
            .map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{}: an encryption key is 32 bytes, this file has {}",
                        path.display(),
                        bytes.len()
                    ),
                )
            })
    }

    fn seal(&self, op: Op, key: &str, plain: &[u8]) -> Result<Bytes> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = self
            .0
            .encrypt(&nonce, plain)
            .map_err(|_| Error::Encryption {
                op,
                key: key.to_owned(),
                reason: "encryption failed".to_owned(),
            })?;
        let mut out = Vec::with_capacity(MAGIC.len() + NONCE_BYTES + sealed.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(Bytes::from(out))
    }

    fn open(&self, op: Op, key: &str, stored: &Bytes) -> Result<Bytes> {
        let Some(rest) = stored.strip_prefix(MAGIC) else {
            return Ok(stored.clone());
        };
        let fail = |reason: &str| Error::Encryption {
            op,
            key: key.to_owned(),
            reason: reason.to_owned(),
        };
        if rest.len() < NONCE_BYTES {
            return Err(fail("the stored value is truncated"));
        }
        let (nonce, sealed) = rest.split_at(NONCE_BYTES);
        self.0
            .decrypt(Nonce::from_slice(nonce), sealed)
            .map(Bytes::from)
            .map_err(|_| {
                fail("the value does not decrypt with this key (wrong key or damaged value)")
            })
    }
}

fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// A store that encrypts the values under `prefixes` before they reach `inner`.
pub struct EncryptedStore {
    inner: Arc<dyn Store>,
    key: EncryptionKey,
    prefixes: Vec<String>,
}

impl EncryptedStore {
    pub fn new(inner: Arc<dyn Store>, key: EncryptionKey, prefixes: Vec<String>) -> Self {
        Self {
            inner,
            key,
            prefixes,
        }
    }

    fn covers(&self, key: &str) -> bool {
        self.prefixes.iter().any(|p| key.starts_with(p.as_str()))
    }

    fn seal(&self, op: Op, key: &str, value: Bytes) -> Result<Bytes> {
        match self.covers(key) {
            true => self.key.seal(op, key, &value),
            false => Ok(value),
        }
    }

    fn open_kv(&self, op: Op, mut kv: KeyValue) -> Result<KeyValue> {
        if self.covers(&kv.key) {
            kv.value = self.key.open(op, &kv.key, &kv.value)?;
        }
        Ok(kv)
    }

    fn open_event(&self, mut event: Event) -> Result<Event> {
        event.kv = self.open_kv(Op::Watch, event.kv)?;
        event.prev = event
            .prev
            .map(|kv| self.open_kv(Op::Watch, kv))
            .transpose()?;
        Ok(event)
    }
}

impl EncryptedStore {
    /// `inner`'s events opened as the consumer takes them, on its task.
    fn opened(&self, inner: WatchStream) -> WatchStream {
        let this = EncryptedStore {
            inner: Arc::clone(&self.inner),
            key: self.key.clone(),
            prefixes: self.prefixes.clone(),
        };
        inner.map_events(move |event| this.open_event(event))
    }
}

#[async_trait]
impl Store for EncryptedStore {
    fn limits(&self) -> &Limits {
        self.inner.limits()
    }

    async fn revision(&self) -> Result<i64> {
        self.inner.revision().await
    }

    async fn members_health(&self) -> Vec<super::MemberHealth> {
        self.inner.members_health().await
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let kv = self.inner.get(key).await?;
        kv.map(|kv| self.open_kv(Op::Get, kv)).transpose()
    }

    async fn list(&self, prefix: &str, options: &ListOptions) -> Result<ListPage> {
        let mut page = self.inner.list(prefix, options).await?;
        page.items = page
            .items
            .into_iter()
            .map(|kv| self.open_kv(Op::List, kv))
            .collect::<Result<_>>()?;
        Ok(page)
    }

    async fn count(&self, prefix: &str) -> Result<u64> {
        self.inner.count(prefix).await
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue> {
        let sealed = self.seal(Op::Create, key, value.clone())?;
        let mut kv = self.inner.create(key, sealed).await?;
        kv.value = value;
        Ok(kv)
    }

    async fn update(&self, key: &str, value: Bytes, expected: i64) -> Result<KeyValue> {
        let sealed = self.seal(Op::Update, key, value.clone())?;
        let mut kv = self.inner.update(key, sealed, expected).await?;
        kv.value = value;
        Ok(kv)
    }

    async fn delete(&self, key: &str, expected: Option<i64>) -> Result<Deleted> {
        let mut deleted = self.inner.delete(key, expected).await?;
        deleted.prev = self.open_kv(Op::Delete, deleted.prev)?;
        Ok(deleted)
    }

    async fn watch(&self, prefix: &str, after_revision: i64) -> Result<WatchStream> {
        let inner = self.inner.watch(prefix, after_revision).await?;
        Ok(self.opened(inner))
    }

    async fn watch_named(
        &self,
        prefix: &str,
        name: &str,
        after_revision: i64,
    ) -> Result<WatchStream> {
        let inner = self.inner.watch_named(prefix, name, after_revision).await?;
        Ok(self.opened(inner))
    }

    async fn compact(&self, revision: i64) -> Result<i64> {
        self.inner.compact(revision).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_plaintext_passes_through() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let key = EncryptionKey::load_or_create(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap().len(), 32);
        let sealed = key.seal(Op::Create, "/k", b"secret-value").unwrap();
        assert!(sealed.starts_with(MAGIC));
        assert!(!sealed.windows(12).any(|w| w == b"secret-value"));
        assert_eq!(
            key.open(Op::Get, "/k", &sealed).unwrap(),
            Bytes::from_static(b"secret-value")
        );
        // Two seals of one value differ (fresh nonce).
        assert_ne!(sealed, key.seal(Op::Create, "/k", b"secret-value").unwrap());
        // Values from before encryption read as they are.
        let plain = Bytes::from_static(b"{\"kind\":\"Secret\"}");
        assert_eq!(key.open(Op::Get, "/k", &plain).unwrap(), plain);
        // The same file gives the same key.
        let again = EncryptionKey::load_or_create(&path).unwrap();
        assert_eq!(
            again.open(Op::Get, "/k", &sealed).unwrap(),
            Bytes::from_static(b"secret-value")
        );
    }

    #[test]
    fn a_wrong_key_or_damaged_value_is_an_error_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let one = EncryptionKey::load_or_create(&dir.path().join("one")).unwrap();
        let two = EncryptionKey::load_or_create(&dir.path().join("two")).unwrap();
        let sealed = one
            .seal(Op::Create, "/registry/core/secrets/ns/s", b"x")
            .unwrap();
        let err = two
            .open(Op::Get, "/registry/core/secrets/ns/s", &sealed)
            .unwrap_err();
        assert!(
            err.to_string().contains("/registry/core/secrets/ns/s"),
            "{err}"
        );
        let mut damaged = sealed.to_vec();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        assert!(one.open(Op::Get, "/k", &Bytes::from(damaged)).is_err());
        let truncated = Bytes::from([MAGIC, b"abc"].concat());
        assert!(one.open(Op::Get, "/k", &truncated).is_err());
        // A key file of the wrong size is refused.
        let short = dir.path().join("short");
        std::fs::write(&short, b"tooshort").unwrap();
        assert!(EncryptionKey::load_or_create(&short).is_err());
    }

    #[tokio::test]
    async fn reads_lists_and_watches_decrypt_and_the_backend_holds_only_ciphertext() {
        let dir = tempfile::tempdir().unwrap();
        let config = super::super::SqliteConfig::new(dir.path());
        let inner: Arc<dyn Store> = Arc::new(super::super::SqliteStore::open(config).unwrap());
        let key = EncryptionKey::load_or_create(&dir.path().join("key")).unwrap();
        let store = EncryptedStore::new(inner.clone(), key, vec!["/s/".to_owned()]);
        let value = Bytes::from_static(b"the-secret");
        let created = store.create("/s/a", value.clone()).await.unwrap();
        assert_eq!(created.value, value);
        store.create("/p/b", value.clone()).await.unwrap();
        // The backend holds ciphertext under the prefix, plaintext elsewhere.
        let raw = inner.get("/s/a").await.unwrap().unwrap();
        assert!(raw.value.starts_with(MAGIC));
        assert_eq!(inner.get("/p/b").await.unwrap().unwrap().value, value);
        // Every read path decrypts.
        assert_eq!(store.get("/s/a").await.unwrap().unwrap().value, value);
        let page = store.list("/s/", &ListOptions::default()).await.unwrap();
        assert_eq!(page.items[0].value, value);
        let updated = Bytes::from_static(b"the-new-secret");
        store
            .update("/s/a", updated.clone(), created.mod_revision)
            .await
            .unwrap();
        let mut watch = store.watch("/s/", 0).await.unwrap();
        let first = watch.next().await.unwrap().unwrap();
        assert_eq!(first.kv.value, value);
        let second = watch.next().await.unwrap().unwrap();
        assert_eq!(
            (second.kv.value, second.prev.unwrap().value),
            (updated.clone(), value)
        );
        let deleted = store.delete("/s/a", None).await.unwrap();
        assert_eq!(deleted.prev.value, updated);
    }
}
