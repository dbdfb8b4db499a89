//! The OpenAPI document as served: poem-openapi's, with how to authenticate added from the
//! sections' declared access (a bearer API token, or the dashboard's session cookie), so
//! that generated clients send credentials and viewers offer to enter a token.

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
            }
        }
    }
    document.to_string()
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
