//! Setting defaults in JSON objects.

use serde_json::{json, Value};

/// Sets `object[key]` to `value` when it is missing or null.
pub fn default(object: &mut Value, key: &str, value: Value) {
    if let Some(map) = object.as_object_mut() {
        let slot = map.entry(key.to_owned()).or_insert(Value::Null);
        if slot.is_null() {
            *slot = value;
        }
    }
}

/// The object of `object[key]`, created when missing; `None` if it is not an object.
pub fn child<'a>(object: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    default(object, key, json!({}));
    object.get_mut(key).filter(|v| v.is_object())
}
