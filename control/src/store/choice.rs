//! Which backend `bosun-control` stores its state in, chosen by its command line: the
//! embedded SQLite store under the data directory by default, an etcd cluster when
//! `--etcd-endpoints` names one.

use std::path::Path;
use std::sync::Arc;

use super::{EtcdConfig, EtcdStore, Result, SqliteConfig, SqliteStore, Store};

/// The store flags of `bosun-control`.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// etcd v3 client URLs (`http://host:2379`, comma-separated, several for HA): keep the
    /// state in that etcd cluster instead of the embedded store under --data-dir.
    #[arg(long, value_delimiter = ',', value_name = "URL[,URL…]")]
    pub etcd_endpoints: Vec<String>,
    /// Extra prefix before every key bosun-control writes to etcd. Keys already follow
    /// kube-apiserver's layout (`/registry/<group|core>/<plural>/…`), so the default is none;
    /// set one to share an etcd cluster between several control planes.
    #[arg(long, default_value = "")]
    pub etcd_prefix: String,
}

impl StoreArgs {
    /// Opens the chosen store; the embedded one is `<data_dir>/state.db`.
    pub async fn open(&self, data_dir: &Path) -> Result<Arc<dyn Store>> {
        if self.etcd_endpoints.is_empty() {
            let config = SqliteConfig::new(data_dir);
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(config))
                .await
                .map_err(|error| super::Error::Io {
                    path: data_dir.to_owned(),
                    source: std::io::Error::other(error),
                })??;
            return Ok(Arc::new(store));
        }
        let config = EtcdConfig::new(self.etcd_endpoints.clone(), self.etcd_prefix.clone());
        Ok(Arc::new(EtcdStore::connect(config).await?))
    }
}
