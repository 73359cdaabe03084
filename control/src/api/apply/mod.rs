//! Server-side apply (`kubectl apply --server-side`): a PATCH of content type
//! `application/apply-patch+yaml` whose body is the manager's whole intent for the object. The
//! object is created from it when missing; otherwise the intent is merged into the live object
//! the way a strategic merge patch merges (lists by their merge keys), fields the manager
//! applied last time and leaves out now are removed unless another manager has them, and a
//! field another manager has that the intent changes is a conflict (409, each field named),
//! unless `force=true` takes it over. Who has which field is `metadata.managedFields`
//! (`managed`), in kube's `FieldsV1` form (`fields`).

pub mod fields;
pub mod managed;

use http::{Response, StatusCode};
use serde_json::{json, Value};

use super::patch::shape::Shape;
use super::patch::strategic;
use super::update::write;
use super::{decode_stored, meta, object_response, validate, Call};
use crate::http_util::ResponseBody;
use crate::status::ApiError;
use managed::Entry;

/// The content type of an apply patch.
pub const CONTENT_TYPE: &str = "application/apply-patch+yaml";

/// kube-apiserver's limit on a field manager's name.
const MANAGER_MAX: usize = 128;

pub async fn apply(call: &Call, body: &[u8]) -> Result<Response<ResponseBody>, ApiError> {
    let resource = call.resource();
    if let Some(sub) = &call.path.subresource {
        return Err(ApiError::unsupported_media(
            CONTENT_TYPE,
            &format!("server-side apply is served on the object, not on its {sub} subresource"),
        ));
    }
    let manager = field_manager(call)?;
    let name = call.path.name.clone().unwrap_or_default();
    let key = call.path.key().unwrap_or_default();
    let applied = parse_intent(call, body, &name)?;
    // Checked on a copy: the check fills in defaults, which are not the manager's intent (the
    // managed fields), but are what a create from the intent stores.
    let mut defaulted = applied.clone();
    let warnings =
        validate::check_typed(&mut defaulted, &[], resource, call.query.field_validation)?;
    let shape = Shape::of_resource(resource);
    let intent = fields::of_object(&applied, shape, resource.has_status());
    for _ in 0..5 {
        let kv = match call.state.store.get(&key).await {
            Ok(Some(kv)) => kv,
            Ok(None) => {
                let mut object = defaulted.clone();
                if resource.has_status() {
                    if let Some(map) = object.as_object_mut() {
                        map.remove("status");
                    }
                }
                let mut entry = Entry::new(&manager, "Apply", resource);
                entry.fields = intent.clone();
                managed::set_entries(&mut object, &[entry]);
                return super::create::create_object(call, object, warnings).await;
            }
            Err(e) => return Err(call.store_error(&name, e)),
        };
        let old = decode_stored(&kv)?;
        let live = call.shown(old.clone()).await?;
        let mut entries = match managed::entries(&live) {
            list if list.is_empty() => managed::first_apply(&live, &manager, resource),
            list => list,
        };
        let mine = entries
            .iter()
            .position(|e| e.is(&manager, "Apply", ""))
            .map(|i| entries.remove(i));
        check_conflicts(call, &live, &applied, &intent, &mut entries)?;
        let mut merged = strategic::apply(live.clone(), &applied, shape)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        // What this manager applied before and leaves out now goes, unless someone else has it.
        if let Some(previous) = &mine {
            let mut dropped: Vec<&fields::Path> = previous
                .fields
                .iter()
                .filter(|path| !fields::covers(&intent, path))
                .filter(|path| !entries.iter().any(|e| fields::covers(&e.fields, path)))
                .collect();
            // Shortest first: a dropped list item goes whole before its key field could be
            // removed from under it (after which it could no longer be found by its key).
            dropped.sort_by_key(|path| path.len());
            for path in dropped {
                fields::remove_at(&mut merged, path);
            }
        }
        let mut entry = mine.unwrap_or_else(|| Entry::new(&manager, "Apply", resource));
        if entry.fields != intent {
            entry.time = meta::now();
        }
        entry.fields = intent.clone();
        entry.api_version = resource.group_version();
        entries.insert(0, entry);
        managed::set_entries(&mut merged, &entries);

        let mut patched = merged;
        let warnings_after =
            validate::check_typed(&mut patched, &[], resource, call.query.field_validation)?;
        let patched = call.to_storage(patched, Some(&old)).await?;
        let new = meta::prepare_update(&old, patched, resource, None);
        super::update::admit_update(call, &old, &new).await?;
        match write(call, &key, &name, kv.mod_revision, &old, new).await {
            Ok(stored) => {
                let mut all = warnings.clone();
                all.extend(warnings_after.into_iter().filter(|w| !warnings.contains(w)));
                return Ok(object_response(
                    StatusCode::OK,
                    &call.shown(stored).await?,
                    &all,
                ));
            }
            Err(e) if e.reason == "Conflict" => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::conflict(resource.group, resource.plural, &name))
}

/// The request's `fieldManager`: required for an apply, at most 128 characters.
fn field_manager(call: &Call) -> Result<String, ApiError> {
    let invalid = |why: &str| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!("PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: {why}"),
        )
    };
    match call.query.field_manager.as_deref() {
        None | Some("") => Err(invalid("Required value: is required for apply patch")),
        Some(m) if m.chars().count() > MANAGER_MAX => Err(invalid(&format!(
            "Too long: may not be more than {MANAGER_MAX} bytes"
        ))),
        Some(m) => Ok(m.to_owned()),
    }
}

/// The body as an object of the request's kind, named as the URL names it.
fn parse_intent(call: &Call, body: &[u8], name: &str) -> Result<Value, ApiError> {
    let resource = call.resource();
    let mut object: Value = serde_yaml::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    if !object.is_object() {
        return Err(ApiError::bad_request(
            "the applied configuration is not an object",
        ));
    }
    let (api_version, kind) = (
        object["apiVersion"].as_str().unwrap_or(""),
        object["kind"].as_str().unwrap_or(""),
    );
    if api_version.is_empty() || kind.is_empty() {
        return Err(ApiError::bad_request(
            "apiVersion and kind are required in an applied configuration",
        ));
    }
    if api_version != resource.group_version() || kind != resource.kind {
        return Err(ApiError::bad_request(format!(
            "the applied object is a {kind} of {api_version}, the request's resource takes a {} of {}",
            resource.kind,
            resource.group_version()
        )));
    }
    if !object["metadata"]["managedFields"].is_null() {
        return Err(ApiError::bad_request(
            "metadata.managedFields must be nil in an applied configuration",
        ));
    }
    super::update::named_as_the_url(call, &mut object, name)?;
    Ok(object)
}

/// Fails with kube's 409 when the intent changes a field another manager has; with
/// `force=true` the fields are taken from them instead.
fn check_conflicts(
    call: &Call,
    live: &Value,
    applied: &Value,
    intent: &fields::Fields,
    others: &mut [Entry],
) -> Result<(), ApiError> {
    let mut conflicts: Vec<(usize, &fields::Path)> = Vec::new();
    for (i, entry) in others.iter().enumerate() {
        for path in intent.intersection(&entry.fields) {
            if fields::value_at(live, path).is_some() && managed::differs(live, applied, path) {
                conflicts.push((i, path));
            }
        }
    }
    if conflicts.is_empty() {
        return Ok(());
    }
    if call.query.force {
        let taken: Vec<(usize, fields::Path)> =
            conflicts.into_iter().map(|(i, p)| (i, p.clone())).collect();
        for (i, path) in taken {
            others[i].fields.remove(&path);
        }
        return Ok(());
    }
    Err(conflict_error(others, &conflicts))
}

/// kube's conflict Status: `Apply failed with N conflicts: conflicts with "m" using v: …`,
/// one `FieldManagerConflict` cause per field.
fn conflict_error(others: &[Entry], conflicts: &[(usize, &fields::Path)]) -> ApiError {
    let mut causes = Vec::new();
    let mut groups: Vec<String> = Vec::new();
    let mut managers: Vec<usize> = conflicts.iter().map(|(i, _)| *i).collect();
    managers.dedup();
    for i in managers {
        let entry = &others[i];
        let mut with = format!("\"{}\"", entry.manager);
        if !entry.api_version.is_empty() {
            with.push_str(&format!(" using {}", entry.api_version));
        }
        let paths: Vec<String> = conflicts
            .iter()
            .filter(|(j, _)| *j == i)
            .map(|(_, p)| fields::display(p))
            .collect();
        for path in &paths {
            causes.push(json!({"type": "FieldManagerConflict", "message": format!("conflict with {with}"), "field": path}));
        }
        groups.push(match paths.as_slice() {
            [one] => format!("conflict with {with}: {one}"),
            many => format!("conflicts with {with}:\n- {}", many.join("\n- ")),
        });
    }
    let count = conflicts.len();
    let plural = if count == 1 { "" } else { "s" };
    let mut e = ApiError::new(
        StatusCode::CONFLICT,
        "Conflict",
        format!(
            "Apply failed with {count} conflict{plural}: {}",
            groups.join("\n")
        ),
    );
    e.details = Some(json!({ "causes": causes }));
    e
}

#[cfg(test)]
mod tests;
