//! POST to a collection: decode and validate the body, fill the server-owned metadata, check
//! that the namespace exists and is not terminating, and create the key (409 if it exists).
//! A Service gets its ClusterIP and node ports (`service_alloc`), given back if the create
//! fails. A Pod passes kube's ServiceAccount admission (`service_account_admission`).
//! `dryRun=All` does everything but the write.

use super::admission_policy::Operation;
use http::{Response, StatusCode};
use serde_json::Value;

use super::meta::{self, name_of};
use super::namespace_cache::Known;
use super::path::object_key;
use super::{decode_stored, object_response, service_alloc, validate, Call};
use crate::csr;
use crate::http_util::ResponseBody;
use crate::kinds;
use crate::status::ApiError;

/// Names a create with `generateName` draws before it gives up with AlreadyExists (kube's
/// `maxNameGenerationCreateAttempts`).
const GENERATE_NAME_ATTEMPTS: usize = 8;

pub async fn create(call: &Call, body: &[u8]) -> Result<Response<ResponseBody>, ApiError> {
    let (object, warnings) = validate::decode_checked(
        &call.content_type,
        body,
        call.resource(),
        call.query.field_validation,
    )?;
    create_object(call, object, warnings).await
}

/// Creates `object` (decoded and checked, in the request's version); also server-side apply's
/// create.
pub async fn create_object(
    call: &Call,
    object: Value,
    warnings: Vec<String>,
) -> Result<Response<ResponseBody>, ApiError> {
    let resource = call.resource();
    if resource.custom {
        crate::crd::custom::check_create(resource)?;
    }
    let mut object = call.to_storage(object, None).await?;
    let generated = name_of(&object).is_empty();
    meta::prepare_create(&mut object, resource, call.path.namespace.as_deref())?;
    super::defaults::with_identity(&mut object, resource);
    if (resource.group, resource.kind) == ("certificates.k8s.io", "CertificateSigningRequest") {
        csr::prepare_create(
            &mut object,
            &call.identity,
            call.state.ca.as_deref(),
            &meta::now(),
        )?;
    }
    crate::authz::admit(&call.identity, resource, None, &object)?;
    super::volume_claims::admit_create(call, &mut object).await?;
    if let Some(ns) = call.path.namespace.as_deref() {
        namespace_accepts_objects(call, ns).await?;
    }
    super::service_account_admission::admit_create(call, &mut object).await?;
    if (resource.group, resource.kind) == ("", "Pod") {
        let seconds = call.state.default_toleration_seconds;
        super::default_tolerations::admit_create(&mut object, seconds);
    }
    super::priority::admit_pod(call, &mut object).await?;
    super::priority::admit_class(call, &object).await?;
    super::limit_range::admit_create(call, &mut object).await?;
    super::admission_webhook::mutate(call, Operation::Create, &mut object, None).await?;
    validate::check_semantics(&object, None, resource)?;
    super::pod_security::admit(call, &object, None).await?;
    super::rbac_escalation::admit(call, &object).await?;
    super::admission_policy::admit(call, Operation::Create, Some(&object), None).await?;
    super::admission_webhook::validate(call, Operation::Create, Some(&object), None).await?;
    super::quota::admit(call, None, &object).await?;
    let mut name = name_of(&object).to_owned();
    if call.query.dry_run {
        return Ok(object_response(
            StatusCode::CREATED,
            &call.shown(object).await?,
            &warnings,
        ));
    }
    let store = call.state.store.as_ref();
    let reserved = if service_alloc::is_service(&object) {
        service_alloc::allocate(store, &call.state.service_network, &mut object, None).await?
    } else {
        service_alloc::Reserved::default()
    };
    let mut attempts = 1;
    let stored = loop {
        let key = object_key(resource, call.path.namespace.as_deref(), &name);
        let bytes = match meta::to_stored(&object) {
            Ok(bytes) => bytes,
            Err(e) => break Err(e),
        };
        match store.create(&key, bytes).await {
            // A generated name someone holds already: another draw, as kube-apiserver 1.32
            // does (RetryGenerateName).
            Err(crate::store::Error::AlreadyExists { .. })
                if generated && attempts < GENERATE_NAME_ATTEMPTS =>
            {
                attempts += 1;
                let prefix = object["metadata"]["generateName"].as_str().unwrap_or("");
                name = crate::names::generate(prefix);
                object["metadata"]["name"] = Value::String(name.clone());
            }
            result => break result.map_err(|e| call.store_error(&name, e)),
        }
    };
    let kv = match stored {
        Ok(kv) => kv,
        Err(e) => {
            reserved.release(store).await;
            return Err(e);
        }
    };
    if (resource.group, resource.kind) == ("", "Namespace") {
        if let Ok(namespace) = decode_stored(&kv) {
            call.state.namespace_cache.saw(&namespace, kv.mod_revision);
        }
        if let Err(error) = super::namespaces::create_default_account(store, &name).await {
            // The service-account controller makes it on its next pass.
            tracing::warn!(%error, namespace = %name, "creating the default ServiceAccount");
        }
    }
    Ok(object_response(
        StatusCode::CREATED,
        &call.shown(decode_stored(&kv)?).await?,
        &warnings,
    ))
}

/// 404 if the namespace does not exist, 403 while it is being deleted. Asks the namespace
/// cache first, the store when the cache does not know the namespace.
async fn namespace_accepts_objects(call: &Call, ns: &str) -> Result<(), ApiError> {
    let namespaces = kinds::find("", "v1", "namespaces")
        .ok_or_else(|| ApiError::internal("the kinds table has no namespaces"))?;
    let state = &call.state;
    let terminating = match state.namespace_cache.lookup(&state.store, namespaces, ns) {
        Known::Active => false,
        Known::Terminating => true,
        Known::Unknown => {
            let kv = state
                .store
                .get(&object_key(namespaces, None, ns))
                .await
                .map_err(super::map_store_error)?
                .ok_or_else(|| ApiError::not_found("", "namespaces", ns))?;
            let namespace: Value = decode_stored(&kv)?;
            !namespace["metadata"]["deletionTimestamp"].is_null()
        }
    };
    if terminating {
        return Err(ApiError::forbidden(format!(
            "{} {:?} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
            call.resource().group_resource(),
            name_or_empty(call)
        )));
    }
    Ok(())
}

fn name_or_empty(call: &Call) -> &str {
    call.path.name.as_deref().unwrap_or("")
}
