//! A call's objects between versions: stored objects as the call's version shows them
//! (`convert`, or a custom resource's conversion webhook, `crd_conversion`), written objects
//! in the stored version, and objects at an equivalent resource's version (admission
//! webhooks' `matchPolicy: Equivalent`).

use serde_json::Value;

use super::{convert, crd_conversion, Call};
use crate::kinds::Resource;
use crate::status::ApiError;

impl Call {
    /// A stored object as the call's version shows it (`convert`; a custom resource's
    /// conversion webhook, `crd_conversion`, when its CRD has one).
    pub async fn shown(&self, object: Value) -> Result<Value, ApiError> {
        let mut shown = self.shown_all(vec![object]).await?;
        shown
            .pop()
            .ok_or_else(|| ApiError::internal("conversion returned no object"))
    }

    /// Stored objects as the call's version shows them (those a conversion webhook converts
    /// in one call).
    pub async fn shown_all(&self, objects: Vec<Value>) -> Result<Vec<Value>, ApiError> {
        let resource = self.resource();
        match crd_conversion::converting(resource) {
            Some(converting) => {
                let desired = resource.group_version();
                let store = self.state.store.as_ref();
                converting.convert(store, objects, &desired).await
            }
            None => Ok(objects
                .into_iter()
                .map(|o| convert::to_served(o, resource))
                .collect()),
        }
    }

    /// `object`, at the call's version, as `other` (an equivalent resource: another version
    /// of the kind, `convert::equivalents`) shows it.
    pub async fn shown_as(
        &self,
        object: Value,
        other: &'static Resource,
    ) -> Result<Value, ApiError> {
        let converted = match crd_conversion::converting(self.resource()) {
            Some(converting) => {
                let store = self.state.store.as_ref();
                let desired = other.group_version();
                converting
                    .convert(store, vec![object], &desired)
                    .await?
                    .pop()
            }
            None => {
                let stored = convert::to_storage(object, self.resource(), None)?;
                Some(convert::to_served(stored, other))
            }
        };
        converted.ok_or_else(|| ApiError::internal("conversion returned no object"))
    }

    /// A stored object as `other` (an equivalent resource) shows it.
    pub async fn stored_as(
        &self,
        stored: Value,
        other: &'static Resource,
    ) -> Result<Value, ApiError> {
        match crd_conversion::converting(self.resource()) {
            Some(converting) => {
                let store = self.state.store.as_ref();
                let desired = other.group_version();
                let mut converted = converting.convert(store, vec![stored], &desired).await?;
                converted
                    .pop()
                    .ok_or_else(|| ApiError::internal("conversion returned no object"))
            }
            None => Ok(convert::to_served(stored, other)),
        }
    }

    /// `object`, at `other`'s version, back at the call's (`stored`: what is stored, for the
    /// fields `other` cannot express).
    pub async fn shown_from(
        &self,
        object: Value,
        other: &'static Resource,
        stored: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let converted = match crd_conversion::converting(self.resource()) {
            Some(converting) => {
                let store = self.state.store.as_ref();
                let desired = self.resource().group_version();
                converting
                    .convert(store, vec![object], &desired)
                    .await?
                    .pop()
            }
            None => {
                let stored = convert::to_storage(object, other, stored)?;
                Some(convert::to_served(stored, self.resource()))
            }
        };
        converted.ok_or_else(|| ApiError::internal("conversion returned no object"))
    }

    /// Whether showing objects takes a conversion webhook (lists then convert a page at
    /// once).
    pub fn converts_by_webhook(&self) -> bool {
        crd_conversion::converting(self.resource()).is_some()
    }

    /// A written object in the stored version; `old` is the stored one, if any.
    pub async fn to_storage(&self, object: Value, old: Option<&Value>) -> Result<Value, ApiError> {
        let resource = self.resource();
        match crd_conversion::converting(resource) {
            Some(converting) => {
                let storage = converting.storage_api_version();
                let store = self.state.store.as_ref();
                let mut converted = converting.convert(store, vec![object], &storage).await?;
                converted
                    .pop()
                    .ok_or_else(|| ApiError::internal("conversion returned no object"))
            }
            None => convert::to_storage(object, resource, old),
        }
    }
}
