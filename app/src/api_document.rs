//! The OpenAPI document as served: poem-openapi's, with how to authenticate added from the
//! sections' declared access (a bearer API token, or the dashboard's session cookie), so
//! that generated clients send credentials and viewers offer to enter a token, and with the
//! answers the framework gives before any handler runs (415 for a body of a type the
//! operation does not take).

use dashboard_core::registry::{Access, Registry};
use serde_json::{Value, json};

/// `document` (poem-openapi's JSON) with its security schemes and each operation's
/// security: none for public operations, a token or a session for the others.
pub fn with_security(document: &str, registry: &Registry, session_cookie: &str) -> String {
    let Ok(mut document) = serde_json::from_str::<Value>(document) else { return document.to_owned() };
    document["components"]["securitySchemes"] = json!({
        "apiToken": {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token (`dsh_…`) made in My profile, with its scopes and projects: \
                            `Authorization: Bearer <token>`.",
        },
        "session": {
            "type": "apiKey",
            "in": "cookie",
            "name": session_cookie,
            "description": "The dashboard's own session, for its pages' scripts; writes must come from \
                            the dashboard's origin.",
        },
    });
    let public = public_operations(registry);
    if let Some(paths) = document["paths"].as_object_mut() {
        for (path, operations) in paths.iter_mut() {
            for (method, operation) in operations.as_object_mut().into_iter().flatten() {
                let open = public.iter().any(|(m, p)| m.eq_ignore_ascii_case(method) && p == path);
                operation["security"] = if open { json!([]) } else { json!([{ "apiToken": [] }, { "session": [] }]) };
                if operation.get("requestBody").is_some() {
                    operation["responses"]["415"] = json!({
                        "description": "The body is not of a type the operation takes (or has no `Content-Type`).",
                        "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } },
                    });
                }
            }
        }
    }
    standard_formats(&mut document);
    plain_references(&mut document);
    optional_means_nullable(&mut document);
    document.to_string()
}

/// poem-openapi writes a property of an enum or object type with a description of its own
/// as `allOf: [{$ref}, {description}]`; client generators take `allOf` for merging objects
/// and drop the whole schema when the reference is an enum. The reference alone says the
/// same to a machine (the referenced schema has its own description).
fn plain_references(value: &mut Value) {
    match value {
        Value::Object(object) => {
            let lone_reference = object.get("allOf").and_then(Value::as_array).and_then(|parts| {
                let references: Vec<&Value> = parts.iter().filter(|part| part.get("$ref").is_some()).collect();
                let only_words = parts.iter().filter(|part| part.get("$ref").is_none()).all(|part| {
                    part.as_object().is_some_and(|words| words.keys().all(|key| key == "description" || key == "title"))
                });
                (references.len() == 1 && only_words).then(|| references[0]["$ref"].clone())
            });
            if let Some(reference) = lone_reference {
                *value = json!({ "$ref": reference });
                return;
            }
            object.values_mut().for_each(plain_references);
        }
        Value::Array(items) => items.iter_mut().for_each(plain_references),
        _ => {}
    }
}

/// A property an object may leave out may also be `null`: the API reads both as "none"
/// (and never writes a `null`, it leaves the property out), so the document says so for
/// every optional property of a plain type. References keep their schema untouched (a
/// `nullable` beside a `$ref` means nothing in OpenAPI 3.0).
fn optional_means_nullable(document: &mut Value) {
    let Some(schemas) = document["components"]["schemas"].as_object_mut() else { return };
    for schema in schemas.values_mut() {
        let required: Vec<String> = schema["required"]
            .as_array()
            .map(|names| names.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) else { continue };
        for (name, property) in properties.iter_mut() {
            // A map with a default of its own stays a map: a generator cannot make `{}` the
            // default of something that may also be null.
            let map_default = property.get("default").is_some_and(Value::is_object);
            if !required.contains(name) && property.get("type").is_some() && !map_default {
                property["nullable"] = json!(true);
            }
        }
    }
}

/// poem-openapi names a day's format `naive-date`, which no tool knows (so a fuzzer sends
/// any text, and a client generator a plain string): the standard name is `date`.
fn standard_formats(value: &mut Value) {
    match value {
        Value::Object(object) => {
            if object.get("format").and_then(Value::as_str) == Some("naive-date") {
                object.insert("format".to_owned(), json!("date"));
            }
            object.values_mut().for_each(standard_formats);
        }
        Value::Array(items) => items.iter_mut().for_each(standard_formats),
        _ => {}
    }
}

/// (method, path) of the operations anyone may call.
fn public_operations(registry: &Registry) -> Vec<(&'static str, &'static str)> {
    registry
        .sections()
        .iter()
        .filter_map(|section| section.api.as_ref())
        .flat_map(|api| api.operations.iter())
        .filter(|operation| matches!(operation.access, Access::Public))
        .map(|operation| (operation.method.as_str(), operation.path))
        .collect()
}
