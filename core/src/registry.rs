//! The section registry: how a dashboard section declares itself.
//!
//! A section crate calls [`register_section!`](crate::register_section) once with a
//! [`Section`]: its id and title, navigation entry, permissions (and which of them are
//! exempt from the second factor), HTML pages, API type and templates. At start-up
//! [`Registry::global`] collects every declaration once, checks it and sorts it. An
//! inconsistent registry refuses to start with a message that names every problem,
//! because a silently ignored route or permission would be a hole in access control.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::OnceLock;

use poem::endpoint::BoxEndpoint;
use poem::http::Method;
use poem_openapi::OpenApi;
use poem_openapi::registry::{MetaApi, Registry as SchemaRegistry};

/// Routes as poem-openapi hands them over: path → method → endpoint.
pub type RouteTable = HashMap<String, HashMap<Method, BoxEndpoint<'static>>>;

/// The built-in roles every company has. Each permission says which of them hold it by
/// default; the merchant admin holds every permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BuiltinRole {
    Support,
    Operations,
    Finance,
    Risks,
    MerchantAdmin,
}

impl BuiltinRole {
    pub const ALL: [BuiltinRole; 5] = [
        BuiltinRole::Support,
        BuiltinRole::Operations,
        BuiltinRole::Finance,
        BuiltinRole::Risks,
        BuiltinRole::MerchantAdmin,
    ];

    /// Stable key stored in `roles.builtin` and used on the command line.
    pub fn key(self) -> &'static str {
        match self {
            BuiltinRole::Support => "support",
            BuiltinRole::Operations => "operations",
            BuiltinRole::Finance => "finance",
            BuiltinRole::Risks => "risks",
            BuiltinRole::MerchantAdmin => "merchant_admin",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BuiltinRole::Support => "Support",
            BuiltinRole::Operations => "Operations",
            BuiltinRole::Finance => "Finance",
            BuiltinRole::Risks => "Risks",
            BuiltinRole::MerchantAdmin => "Merchant admin",
        }
    }

    pub fn from_key(key: &str) -> Option<BuiltinRole> {
        BuiltinRole::ALL.into_iter().find(|role| role.key() == key)
    }
}

/// A permission a section declares, e.g. `reports.create`.
#[derive(Debug)]
pub struct Permission {
    /// `<section id>.<action>`, lower case.
    pub code: &'static str,
    pub label: &'static str,
    pub description: &'static str,
    /// PSD2: a few permissions may be used without the second factor; all others need it.
    pub second_factor_exempt: bool,
    /// Built-in roles that hold this permission by default (the merchant admin holds all).
    pub default_roles: &'static [BuiltinRole],
}

/// Who may use a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, signed in or not (sign-in form, hosted pages for customers).
    Public,
    /// Any signed-in user of the company (the home page, one's own profile).
    SignedIn,
    /// Signed-in users holding this permission.
    Permission(&'static str),
    /// Signed-in users holding any of these permissions (a section's home page, where
    /// each finds what they may do).
    AnyOf(&'static [&'static str]),
    /// Nothing was declared: the registry refuses to start (deny by default).
    Undeclared,
}

/// An HTML page of a section.
pub struct Page {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub endpoint: fn() -> BoxEndpoint<'static>,
}

/// The permission an API operation requires, matched by method and documented path.
#[derive(Debug)]
pub struct ApiOperation {
    pub method: Method,
    /// The path as the OpenAPI document shows it, without `/api/v1`: `/reports/{id}`.
    pub path: &'static str,
    pub access: Access,
}

/// A section's poem-openapi type, kept as function pointers because `OpenApi` is not
/// object safe.
pub struct Api {
    pub operations: &'static [ApiOperation],
    pub meta: fn() -> Vec<MetaApi>,
    pub register: fn(&mut SchemaRegistry),
    pub add_routes: fn(&mut RouteTable),
}

impl Api {
    /// Describes the API type `T` and the permission of each of its operations.
    pub const fn of<T: OpenApi + Default>(operations: &'static [ApiOperation]) -> Api {
        Api { operations, meta: T::meta, register: T::register, add_routes: add_routes_of::<T> }
    }
}

fn add_routes_of<T: OpenApi + Default>(table: &mut RouteTable) {
    T::default().add_routes(table)
}

/// A navigation entry; shown to users who may open the page at `path`.
#[derive(Debug)]
pub struct Nav {
    pub label: &'static str,
    pub path: &'static str,
    /// Lower numbers come first.
    pub order: i32,
    /// One of the names in [`crate::theme::ICONS`].
    pub icon: Option<&'static str>,
    /// Other paths whose pages (and their sub-pages) belong to this entry: it is shown as
    /// the current one there too.
    pub covers: &'static [&'static str],
}

/// A handlebars template; its name starts with the section id (`reports/list`).
pub struct Template {
    pub name: &'static str,
    pub source: &'static str,
}

/// Everything a section declares.
pub struct Section {
    pub id: &'static str,
    pub title: &'static str,
    pub nav: Option<Nav>,
    pub permissions: &'static [Permission],
    pub pages: &'static [Page],
    pub api: Option<Api>,
    pub templates: &'static [Template],
}

/// A registered section with the package (crate) that declared it.
pub struct SectionSource {
    pub package: &'static str,
    pub section: &'static Section,
}

inventory::collect!(SectionSource);

impl SectionSource {
    /// Every section linked into this binary, by id, with the package that declared it.
    pub fn all() -> BTreeMap<&'static str, &'static str> {
        inventory::iter::<SectionSource>.into_iter().map(|source| (source.section.id, source.package)).collect()
    }
}

/// Whether `path` (`/payments/pay_1`) is an instance of the API path `template`
/// (`/payments/{id}`): the same segments, a placeholder standing for any non-empty one.
pub fn path_fits(template: &str, path: &str) -> bool {
    let (template, path): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    template.len() == path.len()
        && template.iter().zip(&path).all(|(part, value)| {
            part == value || ((part.starts_with('{') || part.starts_with(':')) && !value.is_empty())
        })
}

/// Declares a section. Call it once in the section crate, at the top level.
///
/// See `modules/example` for a complete, commented use.
#[macro_export]
macro_rules! register_section {
    ($section:expr) => {
        const _: () = {
            static SECTION: $crate::registry::Section = $section;
            $crate::__private::inventory::submit! {
                $crate::registry::SectionSource { package: env!("CARGO_PKG_NAME"), section: &SECTION }
            }
        };
    };
}

/// Declares an HTML page: `page!(GET "/path" => handler, Access::...)`.
#[macro_export]
macro_rules! page {
    ($method:ident $path:literal => $handler:expr, $access:expr) => {
        $crate::registry::Page {
            method: $crate::__private::Method::$method,
            path: $path,
            access: $access,
            endpoint: || {
                $crate::__private::EndpointExt::boxed($crate::__private::EndpointExt::map_to_response($handler))
            },
        }
    };
}

/// Declares the access of an API operation: `operation!(GET "/things/{id}", Access::...)`.
#[macro_export]
macro_rules! operation {
    ($method:ident $path:literal, $access:expr) => {
        $crate::registry::ApiOperation { method: $crate::__private::Method::$method, path: $path, access: $access }
    };
}

/// Paths that belong to the application shell, not to sections.
pub const RESERVED_PREFIXES: &[&str] = &["/api", "/static", "/healthz", "/readyz"];

/// Why the registry refuses to start: every problem found, one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryError {
    pub problems: Vec<String>,
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "the section registry is inconsistent; the dashboard will not start:")?;
        for problem in &self.problems {
            writeln!(f, "  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RegistryError {}

/// One navigation entry, resolved.
#[derive(Debug, Clone, Copy)]
pub struct NavEntry {
    pub section: &'static str,
    pub label: &'static str,
    pub path: &'static str,
    pub icon: Option<&'static str>,
    pub covers: &'static [&'static str],
    pub access: Access,
}

impl NavEntry {
    /// Whether the page at `path` belongs to this entry.
    pub fn is_current(&self, path: &str) -> bool {
        let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
        (if self.path == "/" { path == "/" } else { under(self.path) }) || self.covers.iter().any(|p| under(p))
    }
}

/// The checked, sorted and immutable set of sections.
pub struct Registry {
    sections: Vec<&'static Section>,
    permissions: BTreeMap<&'static str, &'static Permission>,
    nav: Vec<NavEntry>,
    /// (method, canonical path) → access, for API operations.
    api_access: HashMap<(Method, String), Access>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry").field("sections", &self.section_ids()).finish_non_exhaustive()
    }
}

static GLOBAL: OnceLock<Result<Registry, RegistryError>> = OnceLock::new();

impl Registry {
    /// The registry of every section linked into this binary, built and checked once.
    pub fn global() -> Result<&'static Registry, RegistryError> {
        GLOBAL
            .get_or_init(|| Registry::build(inventory::iter::<SectionSource>.into_iter().map(|s| s.section).collect()))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Checks and sorts `sections`.
    pub fn build(mut sections: Vec<&'static Section>) -> Result<Registry, RegistryError> {
        sections.sort_by_key(|section| section.id);
        let mut problems = Vec::new();

        let mut seen_ids = BTreeSet::new();
        for section in &sections {
            if !seen_ids.insert(section.id) {
                problems.push(format!("section id {:?} is declared twice", section.id));
            }
        }

        let permissions = collect_permissions(&sections, &mut problems);
        check_pages(&sections, &permissions, &mut problems);
        let api_access = check_api(&sections, &permissions, &mut problems);
        check_templates(&sections, &mut problems);
        let nav = collect_nav(&sections, &mut problems);

        if problems.is_empty() {
            Ok(Registry { sections, permissions, nav, api_access })
        } else {
            Err(RegistryError { problems })
        }
    }

    /// The methods the API answers on `path` (under `/api/v1`, e.g. `/payments/pay_1`),
    /// for a 405's `Allow`; empty when no operation has that path.
    pub fn api_methods(&self, path: &str) -> Vec<&'static str> {
        // A path the API names exactly (`/reports/types`) is that resource, not an instance
        // of a template it also fits (`/reports/{id}`).
        let mut methods = self.api_methods_named(path).unwrap_or_else(|| {
            self.api_operations()
                .filter(|operation| path_fits(operation.path, path))
                .map(|o| o.method.as_str())
                .collect()
        });
        methods.sort_unstable();
        methods.dedup();
        methods
    }

    fn api_operations(&self) -> impl Iterator<Item = &'static ApiOperation> + '_ {
        self.sections().iter().filter_map(|section| section.api.as_ref()).flat_map(|api| api.operations.iter())
    }

    /// The methods of the operations whose path is exactly `path` (under `/api/v1`, e.g.
    /// `/fraud/rules/export`); none when no operation names it (a template may still fit).
    pub fn api_methods_named(&self, path: &str) -> Option<Vec<&'static str>> {
        let methods: Vec<&'static str> = self
            .api_operations()
            .filter(|operation| operation.path == path)
            .map(|operation| operation.method.as_str())
            .collect();
        (!methods.is_empty()).then_some(methods)
    }

    /// The template of the route that answers `path` (`/payments/:id`, `/api/v1/payments/{id}`),
    /// for metrics that must not make a series per id; `other` for none (a 404).
    pub fn route_template(&self, method: &str, path: &str) -> String {
        if path.starts_with("/static/") {
            return "/static".to_owned();
        }
        if let Some(api_path) = path.strip_prefix("/api/v1") {
            let operations =
                || self.sections.iter().filter_map(|s| s.api.as_ref()).flat_map(|api| api.operations.iter());
            let exact = operations().find(|o| o.method.as_str() == method && o.path == api_path);
            let found =
                exact.or_else(|| operations().find(|o| o.method.as_str() == method && path_fits(o.path, api_path)));
            return found.map_or_else(|| "other".to_owned(), |o| format!("/api/v1{}", o.path));
        }
        let pages = || self.sections.iter().flat_map(|section| section.pages.iter());
        let exact = pages().find(|p| p.method.as_str() == method && p.path == path);
        exact.or_else(|| pages().find(|p| p.method.as_str() == method && path_fits(p.path, path))).map_or_else(
            || if path.starts_with("/api/") { path.to_owned() } else { "other".to_owned() },
            |p| p.path.to_owned(),
        )
    }

    pub fn sections(&self) -> &[&'static Section] {
        &self.sections
    }

    pub fn section_ids(&self) -> Vec<&'static str> {
        self.sections.iter().map(|section| section.id).collect()
    }

    /// Every declared permission, sorted by code.
    pub fn permissions(&self) -> impl Iterator<Item = &'static Permission> + '_ {
        self.permissions.values().copied()
    }

    pub fn permission(&self, code: &str) -> Option<&'static Permission> {
        self.permissions.get(code).copied()
    }

    /// The permissions a built-in role holds by default.
    pub fn default_permissions(&self, role: BuiltinRole) -> Vec<&'static str> {
        self.permissions()
            .filter(|p| role == BuiltinRole::MerchantAdmin || p.default_roles.contains(&role))
            .map(|p| p.code)
            .collect()
    }

    /// Navigation entries in display order.
    pub fn nav(&self) -> &[NavEntry] {
        &self.nav
    }

    /// The access an API operation requires; `None` for an unknown operation.
    pub fn api_access(&self, method: &Method, path: &str) -> Option<Access> {
        self.api_access.get(&(method.clone(), canonical_path(path))).copied()
    }
}

/// Replaces path parameters (`{id}` in documents, `:param0` in poem routes) by `{}` so
/// that both spellings of a path compare equal.
pub fn canonical_path(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            let is_param = segment.starts_with(':')
                || segment.starts_with('*')
                || (segment.starts_with('{') && segment.ends_with('}'));
            if is_param { "{}" } else { segment }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn collect_permissions(
    sections: &[&'static Section],
    problems: &mut Vec<String>,
) -> BTreeMap<&'static str, &'static Permission> {
    let mut permissions = BTreeMap::new();
    for section in sections {
        for permission in section.permissions {
            let prefix_ok =
                permission.code.strip_prefix(section.id).and_then(|rest| rest.strip_prefix('.')).is_some_and(
                    |action| {
                        !action.is_empty() && action.chars().all(|c| c.is_ascii_lowercase() || c == '_' || c == '.')
                    },
                );
            if !prefix_ok {
                problems.push(format!(
                    "section {:?}: permission code {:?} must be \"{}.<action>\" in lower case",
                    section.id, permission.code, section.id
                ));
            }
            if permissions.insert(permission.code, permission).is_some() {
                problems.push(format!(
                    "permission {:?} is declared twice (again by section {:?})",
                    permission.code, section.id
                ));
            }
        }
    }
    permissions
}

fn check_access(
    what: &str,
    access: Access,
    permissions: &BTreeMap<&'static str, &'static Permission>,
    problems: &mut Vec<String>,
) {
    match access {
        Access::Undeclared => problems.push(format!("{what} declares no permission")),
        Access::Permission(code) if !permissions.contains_key(code) => {
            problems.push(format!("{what} requires permission {code:?}, which no section declares"))
        }
        Access::AnyOf([]) => problems.push(format!("{what} declares no permission")),
        Access::AnyOf(codes) => {
            for code in codes.iter().filter(|code| !permissions.contains_key(*code)) {
                problems.push(format!("{what} requires permission {code:?}, which no section declares"));
            }
        }
        _ => {}
    }
}

fn check_pages(
    sections: &[&'static Section],
    permissions: &BTreeMap<&'static str, &'static Permission>,
    problems: &mut Vec<String>,
) {
    let mut seen: HashMap<(Method, String), &'static str> = HashMap::new();
    for section in sections {
        for page in section.pages {
            let what = format!("section {:?}: page {} {}", section.id, page.method, page.path);
            if !page.path.starts_with('/') {
                problems.push(format!("{what}: the path must start with '/'"));
            }
            if let Some(prefix) = RESERVED_PREFIXES
                .iter()
                .find(|prefix| page.path == **prefix || page.path.starts_with(&format!("{prefix}/")))
            {
                problems.push(format!("{what}: paths under {prefix} belong to the application"));
            }
            check_access(&what, page.access, permissions, problems);
            let key = (page.method.clone(), canonical_path(page.path));
            if let Some(other) = seen.insert(key, section.id) {
                problems.push(format!("{what}: this method and path are already routed by section {other:?}"));
            }
        }
    }
}

fn check_api(
    sections: &[&'static Section],
    permissions: &BTreeMap<&'static str, &'static Permission>,
    problems: &mut Vec<String>,
) -> HashMap<(Method, String), Access> {
    let mut routed: HashMap<(Method, String), &'static str> = HashMap::new();
    let mut access_of = HashMap::new();
    for section in sections {
        let Some(api) = &section.api else { continue };
        let declared: HashMap<(Method, String), &ApiOperation> =
            api.operations.iter().map(|op| ((op.method.clone(), canonical_path(op.path)), op)).collect();
        let mut documented = BTreeSet::new();
        for meta in (api.meta)() {
            for path in meta.paths {
                for operation in path.operations {
                    let what =
                        format!("section {:?}: API operation {} /api/v1{}", section.id, operation.method, path.path);
                    let key = (operation.method.clone(), canonical_path(&path.path));
                    if let Some(other) = routed.insert(key.clone(), section.id) {
                        problems.push(format!(
                            "{what}: this method and path are already routed by section {other:?} \
                             (poem-openapi would silently keep only one)"
                        ));
                    }
                    match declared.get(&key) {
                        Some(op) => {
                            check_access(&what, op.access, permissions, problems);
                            access_of.insert(key.clone(), op.access);
                        }
                        None => problems.push(format!("{what} declares no permission")),
                    }
                    documented.insert(key);
                }
            }
        }
        for (key, op) in &declared {
            if !documented.contains(key) {
                problems.push(format!(
                    "section {:?}: a permission is declared for {} {}, which its API does not have",
                    section.id, op.method, op.path
                ));
            }
        }
    }
    access_of
}

fn check_templates(sections: &[&'static Section], problems: &mut Vec<String>) {
    let mut seen = BTreeSet::new();
    for section in sections {
        for template in section.templates {
            if !template.name.starts_with(&format!("{}/", section.id)) {
                problems.push(format!(
                    "section {:?}: template {:?} must be named \"{}/…\"",
                    section.id, template.name, section.id
                ));
            }
            if !seen.insert(template.name) {
                problems.push(format!("template {:?} is declared twice", template.name));
            }
        }
    }
}

fn collect_nav(sections: &[&'static Section], problems: &mut Vec<String>) -> Vec<NavEntry> {
    let mut entries: Vec<(i32, NavEntry)> = Vec::new();
    for section in sections {
        let Some(nav) = &section.nav else { continue };
        let page = section.pages.iter().find(|page| page.method == Method::GET && page.path == nav.path);
        match page {
            Some(page) => entries.push((
                nav.order,
                NavEntry {
                    section: section.id,
                    label: nav.label,
                    path: nav.path,
                    icon: nav.icon,
                    covers: nav.covers,
                    access: page.access,
                },
            )),
            None => problems.push(format!(
                "section {:?}: the navigation entry points at {}, which is not one of its GET pages",
                section.id, nav.path
            )),
        }
    }
    entries.sort_by_key(|(order, entry)| (*order, entry.section));
    entries.into_iter().map(|(_, entry)| entry).collect()
}

#[cfg(test)]
mod tests {
    use poem::handler;
    use poem_openapi::payload::PlainText;

    use super::*;

    #[test]
    fn a_path_fits_its_template() {
        assert!(path_fits("/payments/{id}", "/payments/pay_1"));
        assert!(path_fits("/payments/export", "/payments/export"));
        assert!(!path_fits("/payments/{id}", "/payments/"));
        assert!(!path_fits("/payments/{id}", "/payments/pay_1/refunds"));
    }

    #[handler]
    fn page_handler() -> &'static str {
        "page"
    }

    #[derive(Default)]
    struct ThingsApi;

    #[poem_openapi::OpenApi]
    impl ThingsApi {
        #[oai(path = "/things/:id", method = "get")]
        async fn get(&self, id: poem_openapi::param::Path<i64>) -> PlainText<String> {
            PlainText(id.0.to_string())
        }
    }

    const VIEW: Permission = Permission {
        code: "things.view",
        label: "View things",
        description: "",
        second_factor_exempt: true,
        default_roles: &[BuiltinRole::Support],
    };

    static THINGS: Section = Section {
        id: "things",
        title: "Things",
        nav: Some(Nav { label: "Things", path: "/things", order: 1, icon: None, covers: &[] }),
        permissions: &[VIEW],
        pages: &[crate::page!(GET "/things" => page_handler, Access::Permission("things.view"))],
        api: Some(Api::of::<ThingsApi>(&[crate::operation!(GET "/things/{id}", Access::Permission("things.view"))])),
        templates: &[Template { name: "things/list", source: "" }],
    };

    fn problems(sections: Vec<&'static Section>) -> Vec<String> {
        Registry::build(sections).err().map(|e| e.problems).unwrap_or_default()
    }

    fn assert_refused(sections: Vec<&'static Section>, expected: &str) {
        let problems = problems(sections);
        assert!(problems.iter().any(|p| p.contains(expected)), "expected {expected:?} in {problems:#?}");
    }

    #[test]
    fn a_consistent_section_is_accepted() {
        let registry = Registry::build(vec![&THINGS]).expect("valid");
        assert_eq!(registry.section_ids(), ["things"]);
        assert_eq!(registry.api_access(&Method::GET, "/things/:param0"), Some(Access::Permission("things.view")));
        assert_eq!(registry.api_access(&Method::POST, "/things/{id}"), None);
        assert_eq!(registry.default_permissions(BuiltinRole::Support), ["things.view"]);
        assert!(registry.default_permissions(BuiltinRole::Finance).is_empty());
        assert_eq!(registry.default_permissions(BuiltinRole::MerchantAdmin), ["things.view"]);
        assert_eq!(registry.nav()[0].access, Access::Permission("things.view"));
    }

    #[test]
    fn a_duplicate_section_id_is_refused() {
        static AGAIN: Section = Section {
            id: "things",
            title: "Again",
            nav: None,
            permissions: &[],
            pages: &[],
            api: None,
            templates: &[],
        };
        assert_refused(vec![&THINGS, &AGAIN], "section id \"things\" is declared twice");
    }

    #[test]
    fn a_duplicate_permission_code_is_refused() {
        static TWICE: Section = Section {
            id: "things",
            title: "Things",
            nav: None,
            permissions: &[VIEW, VIEW],
            pages: &[],
            api: None,
            templates: &[],
        };
        assert_refused(vec![&TWICE], "permission \"things.view\" is declared twice");
    }

    #[test]
    fn a_permission_outside_the_section_namespace_is_refused() {
        static FOREIGN: Section = Section {
            id: "other",
            title: "Other",
            nav: None,
            permissions: &[VIEW],
            pages: &[],
            api: None,
            templates: &[],
        };
        assert_refused(vec![&FOREIGN], "must be \"other.<action>\"");
    }

    #[test]
    fn a_duplicate_page_route_is_refused() {
        static CLASH: Section = Section {
            id: "clash",
            title: "Clash",
            nav: None,
            permissions: &[],
            pages: &[crate::page!(GET "/things" => page_handler, Access::SignedIn)],
            api: None,
            templates: &[],
        };
        assert_refused(vec![&THINGS, &CLASH], "page GET /things: this method and path are already routed");
    }

    #[test]
    fn a_duplicate_api_path_and_method_is_refused_even_with_other_parameter_names() {
        #[derive(Default)]
        struct ClashApi;

        #[poem_openapi::OpenApi]
        impl ClashApi {
            #[oai(path = "/things/:thing", method = "get")]
            async fn get(&self, thing: poem_openapi::param::Path<i64>) -> PlainText<String> {
                PlainText(thing.0.to_string())
            }
        }

        static CLASH: Section = Section {
            id: "clash",
            title: "Clash",
            nav: None,
            permissions: &[],
            pages: &[],
            api: Some(Api::of::<ClashApi>(&[crate::operation!(GET "/things/{thing}", Access::SignedIn)])),
            templates: &[],
        };
        assert_refused(
            vec![&THINGS, &CLASH],
            "section \"things\": API operation GET /api/v1/things/{id}: this method and path are already routed by section \"clash\"",
        );
    }

    #[test]
    fn routes_without_a_declared_permission_are_refused() {
        static UNDECLARED: Section = Section {
            id: "things",
            title: "Things",
            nav: None,
            permissions: &[],
            pages: &[crate::page!(GET "/things" => page_handler, Access::Undeclared)],
            api: Some(Api::of::<ThingsApi>(&[])),
            templates: &[],
        };
        let problems = problems(vec![&UNDECLARED]);
        assert!(problems.iter().any(|p| p.contains("page GET /things declares no permission")), "{problems:#?}");
        assert!(problems.iter().any(|p| p.contains("GET /api/v1/things/{id} declares no permission")), "{problems:#?}");
    }

    #[test]
    fn a_permission_referenced_but_not_declared_is_refused() {
        static MISSING: Section = Section {
            id: "things",
            title: "Things",
            nav: None,
            permissions: &[],
            pages: &[crate::page!(GET "/things" => page_handler, Access::Permission("things.delete"))],
            api: None,
            templates: &[],
        };
        assert_refused(vec![&MISSING], "requires permission \"things.delete\", which no section declares");
    }

    #[test]
    fn a_permission_for_an_operation_the_api_lacks_is_refused() {
        static STALE: Section = Section {
            id: "things",
            title: "Things",
            nav: None,
            permissions: &[VIEW],
            pages: &[],
            api: Some(Api::of::<ThingsApi>(&[
                crate::operation!(GET "/things/{id}", Access::Permission("things.view")),
                crate::operation!(DELETE "/things/{id}", Access::Permission("things.view")),
            ])),
            templates: &[],
        };
        assert_refused(vec![&STALE], "a permission is declared for DELETE /things/{id}, which its API does not have");
    }

    #[test]
    fn reserved_paths_templates_outside_the_namespace_and_dangling_nav_are_refused() {
        static MESSY: Section = Section {
            id: "messy",
            title: "Messy",
            nav: Some(Nav { label: "Messy", path: "/messy", order: 1, icon: None, covers: &[] }),
            permissions: &[],
            pages: &[crate::page!(GET "/static/x" => page_handler, Access::Public)],
            api: None,
            templates: &[Template { name: "layout", source: "" }],
        };
        let problems = problems(vec![&MESSY]);
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(problems[0].contains("paths under /static belong to the application"));
        assert!(problems[1].contains("template \"layout\" must be named \"messy/…\""));
        assert!(problems[2].contains("navigation entry points at /messy"));
    }

    #[test]
    fn canonical_paths_ignore_parameter_names() {
        assert_eq!(canonical_path("/a/{id}/b"), canonical_path("/a/:param0/b"));
        assert_ne!(canonical_path("/a/{id}"), canonical_path("/a/b"));
    }
}
