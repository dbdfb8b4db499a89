//! The API's reference as one page of HTML (`/api/docs`), drawn from the OpenAPI document
//! as served: every operation by section, with its permission, parameters, body and
//! answers, then every schema with its fields. A themed page without scripts: it loads in
//! a blink, reads well at 390 px, works with a screen reader and prints; integrators'
//! tools take the document itself (`/api/openapi.json`).

use serde_json::{Value, json};

use dashboard_core::theme::Theme;

/// The page for `document` (the OpenAPI document as served, JSON).
pub fn page(theme: &Theme, document: &str) -> Result<String, String> {
    let document: Value = serde_json::from_str(document).map_err(|e| format!("the OpenAPI document: {e}"))?;
    theme.render("api-reference", &context(&document)).map_err(|e| e.to_string())
}

/// What the template shows: the sections with their operations, and the schemas.
fn context(document: &Value) -> Value {
    let mut sections: Vec<(String, String, Vec<Value>)> = document["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|tag| (text(&tag["name"]), text(&tag["description"]), Vec::new()))
        .collect();
    for (path, operations) in document["paths"].as_object().into_iter().flatten() {
        for (method, operation) in operations.as_object().into_iter().flatten() {
            let tag = operation["tags"][0].as_str().unwrap_or("Other").to_owned();
            if !sections.iter().any(|(name, ..)| *name == tag) {
                sections.push((tag.clone(), String::new(), Vec::new()));
            }
            if let Some((.., listed)) = sections.iter_mut().find(|(name, ..)| *name == tag) {
                listed.push(operation_of(method, path, operation));
            }
        }
    }
    let sections: Vec<Value> = sections
        .into_iter()
        .filter(|(.., operations)| !operations.is_empty())
        .map(|(name, description, operations)| {
            let name = words(&name);
            json!({ "name": name, "anchor": anchor("section", &name), "description": description, "operations": operations })
        })
        .collect();
    let schemas: Vec<Value> = document["components"]["schemas"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, schema)| schema_of(name, schema))
        .collect();
    json!({
        "title": text(&document["info"]["title"]),
        "version": text(&document["info"]["version"]),
        "description": text(&document["info"]["description"]),
        "server": text(&document["servers"][0]["url"]),
        "sections": sections,
        "schemas": schemas,
    })
}

fn operation_of(method: &str, path: &str, operation: &Value) -> Value {
    let parameters: Vec<Value> = operation["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|parameter| {
            json!({
                "name": text(&parameter["name"]),
                "in": text(&parameter["in"]),
                "required": parameter["required"].as_bool().unwrap_or(false),
                "type": type_of(&parameter["schema"]),
                "description": text(&parameter["description"]),
            })
        })
        .collect();
    let body = operation["requestBody"]["content"].as_object().map(|content| {
        let kinds: Vec<Value> =
            content.iter().map(|(media, body)| json!({ "media": media, "type": type_of(&body["schema"]) })).collect();
        json!({ "required": operation["requestBody"]["required"].as_bool().unwrap_or(false), "kinds": kinds })
    });
    let answers: Vec<Value> = operation["responses"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(status, answer)| {
            let kinds: Vec<Value> = answer["content"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(media, body)| json!({ "media": media, "type": type_of(&body["schema"]) }))
                .collect();
            json!({ "status": status, "description": text(&answer["description"]), "kinds": kinds })
        })
        .collect();
    let id = operation["operationId"].as_str().map_or_else(|| format!("{method} {path}"), str::to_owned);
    json!({
        "method": method.to_ascii_uppercase(),
        "path": path,
        "anchor": anchor("operation", &id),
        "summary": text(&operation["summary"]),
        "description": paragraphs(&text(&operation["description"])),
        "public": operation["security"].as_array().is_some_and(Vec::is_empty),
        "parameters": parameters,
        "body": body,
        "answers": answers,
    })
}

fn schema_of(name: &str, schema: &Value) -> Value {
    let required: Vec<&str> = schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let fields: Vec<Value> = schema["properties"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(field, property)| {
            json!({
                "name": field,
                "required": required.contains(&field.as_str()),
                "type": type_of(property),
                "description": text(&property["description"]),
            })
        })
        .collect();
    let values: Vec<String> = schema["enum"].as_array().into_iter().flatten().map(text).collect();
    json!({
        "name": name,
        "anchor": anchor("schema", name),
        "description": paragraphs(&text(&schema["description"])),
        "fields": fields,
        "values": values,
        "kind": if fields.is_empty() && values.is_empty() { type_of(schema) } else { Value::Null },
    })
}

/// A schema as a person reads its type: its name, linked, for a reference; `array of …`;
/// the type with its format; one of its values.
fn type_of(schema: &Value) -> Value {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap_or(reference);
        return json!({ "text": name, "link": format!("#{}", anchor("schema", name)) });
    }
    for combined in ["allOf", "oneOf", "anyOf"] {
        if let Some(first) =
            schema[combined].as_array().and_then(|parts| parts.iter().find(|part| part.get("$ref").is_some()))
        {
            return type_of(first);
        }
    }
    let plain = match schema["type"].as_str() {
        Some("array") => {
            let items = type_of(&schema["items"]);
            return json!({ "text": format!("array of {}", items["text"].as_str().unwrap_or("values")), "link": items["link"] });
        }
        Some(kind) => match schema["format"].as_str() {
            Some(format) => format!("{kind} ({format})"),
            None => kind.to_owned(),
        },
        None => "any".to_owned(),
    };
    json!({ "text": plain, "link": Value::Null })
}

/// A description's paragraphs (the document's descriptions separate them by a blank line).
fn paragraphs(description: &str) -> Vec<String> {
    description
        .split("\n\n")
        .map(|paragraph| paragraph.replace('\n', " ").trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

/// A section's tag as people write it: `ManualPayments` as "Manual payments".
fn words(tag: &str) -> String {
    let mut words = String::with_capacity(tag.len() + 4);
    for (i, c) in tag.chars().enumerate() {
        if i > 0 && c.is_ascii_uppercase() {
            words.push(' ');
            words.push(c.to_ascii_lowercase());
        } else {
            words.push(c);
        }
    }
    words
}

fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// An id for a page anchor: letters, digits and dashes.
fn anchor(kind: &str, name: &str) -> String {
    let name: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    format!("{kind}-{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_arrays_and_formats_read_as_types() {
        assert_eq!(type_of(&json!({ "$ref": "#/components/schemas/Money" }))["link"], "#schema-money");
        assert_eq!(
            type_of(&json!({ "type": "array", "items": { "$ref": "#/components/schemas/Money" } }))["text"],
            "array of Money"
        );
        assert_eq!(type_of(&json!({ "type": "string", "format": "date-time" }))["text"], "string (date-time)");
        assert_eq!(paragraphs("One\nline.\n\nTwo."), ["One line.", "Two."]);
        assert_eq!(words("ManualPayments"), "Manual payments");
    }
}
