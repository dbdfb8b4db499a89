//! One OpenAPI document from every section's API type.
//!
//! [`SectionApis`] implements `OpenApi` by walking the registry: the document is the
//! union of the sections' metadata, each operation's description names the permission
//! it requires, and each route is wrapped in an [`ApiGuard`] with the declared access.
//! The registry has already refused duplicate paths and undeclared operations.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use poem::EndpointExt;
use poem_openapi::OpenApi;
use poem_openapi::registry::{MetaApi, Registry as SchemaRegistry};

use crate::auth::ApiGuard;
use crate::registry::{Access, Registry, RouteTable};

/// The API of every registered section.
#[derive(Default)]
pub struct SectionApis;

impl OpenApi for SectionApis {
    fn meta() -> Vec<MetaApi> {
        let Ok(registry) = Registry::global() else { return Vec::new() };
        let mut metas = Vec::new();
        for section in registry.sections() {
            let Some(api) = &section.api else { continue };
            for mut meta in (api.meta)() {
                for path in &mut meta.paths {
                    for operation in &mut path.operations {
                        let access = registry.api_access(&operation.method, &path.path).unwrap_or(Access::Undeclared);
                        operation.description = Some(describe(operation.description, access));
                    }
                }
                metas.push(meta);
            }
        }
        metas
    }

    fn register(schemas: &mut SchemaRegistry) {
        let Ok(registry) = Registry::global() else { return };
        for section in registry.sections() {
            if let Some(api) = &section.api {
                (api.register)(schemas);
            }
        }
    }

    fn add_routes(self, table: &mut RouteTable) {
        let Ok(registry) = Registry::global() else { return };
        for section in registry.sections() {
            let Some(api) = &section.api else { continue };
            let mut routes = RouteTable::new();
            (api.add_routes)(&mut routes);
            for (path, methods) in routes {
                for (method, endpoint) in methods {
                    // Deny by default: an operation the registry does not know is refused.
                    let access = registry.api_access(&method, &path).unwrap_or(Access::Undeclared);
                    let guarded = ApiGuard { inner: endpoint, access }.boxed();
                    table.entry(path.clone()).or_default().insert(method, guarded);
                }
            }
        }
    }
}

/// Appends the required access to an operation's description. The document needs
/// `&'static str`; each distinct text is kept once for the life of the process.
fn describe(description: Option<&'static str>, access: Access) -> &'static str {
    let note = match access {
        Access::Public => "Access: public.".to_owned(),
        Access::SignedIn => "Access: any signed-in user.".to_owned(),
        Access::Permission(code) => format!("Requires permission `{code}`."),
        Access::AnyOf(codes) => format!(
            "Requires one of the permissions {}.",
            codes.iter().map(|code| format!("`{code}`")).collect::<Vec<_>>().join(", ")
        ),
        Access::Undeclared => "Access: refused (no permission declared).".to_owned(),
    };
    let text = match description {
        Some(description) => format!("{description}\n\n{note}"),
        None => note,
    };
    static TEXTS: OnceLock<Mutex<HashMap<String, &'static str>>> = OnceLock::new();
    let mut texts = TEXTS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    texts.entry(text.clone()).or_insert_with(|| Box::leak(text.into_boxed_str()))
}

/// A string in a request body that must be a JSON string: poem-openapi's `String` takes
/// `false` or `12` as the text "false" or "12", which the document says it refuses. For
/// fields where such a value would pass unnoticed (an answer that is the same whatever
/// was asked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text(pub String);

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

mod text_schema {
    use std::borrow::Cow;

    use poem_openapi::registry::MetaSchemaRef;
    use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
    use serde_json::Value;

    use super::Text;

    impl Type for Text {
        const IS_REQUIRED: bool = true;
        type RawValueType = Self;
        type RawElementValueType = Self;

        fn name() -> Cow<'static, str> {
            String::name()
        }

        fn schema_ref() -> MetaSchemaRef {
            String::schema_ref()
        }

        fn as_raw_value(&self) -> Option<&Self::RawValueType> {
            Some(self)
        }

        fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
            Box::new(self.as_raw_value().into_iter())
        }
    }

    impl ToJSON for Text {
        fn to_json(&self) -> Option<Value> {
            Some(Value::String(self.0.clone()))
        }
    }

    impl ParseFromJSON for Text {
        fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
            match value {
                Some(Value::String(text)) => Ok(Text(text)),
                other => Err(ParseError::expected_type(other.unwrap_or_default())),
            }
        }
    }
}
