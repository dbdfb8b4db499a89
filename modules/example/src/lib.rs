//! The example section: a small, complete section to copy when you add one.
//!
//! A section is one crate that depends on `dashboard-core` only. It declares itself with
//! one `register_section!` call (below) and is linked into the binary by one line in
//! `app/src/main.rs`: `use dashboard_example as _;`. It has:
//! - a permission (`example.view`), with the built-in roles that hold it by default and
//!   whether it may be used without the second factor;
//! - a page (`GET /example`) and an API operation (`GET /api/v1/example/greeting`), both
//!   calling the same service function, each declaring the access it requires;
//! - a navigation entry and a template (`templates/index.hbs`);
//! - a test, in `tests/e2e/example.rs` at the workspace level.

use dashboard_core::auth::Principal;
use dashboard_core::registry::{Access, Api, BuiltinRole, Nav, Permission, Section, Template};
use dashboard_core::{ApiResult, AppError, AppState, PageContext, directory, operation, page, register_section};
use poem::handler;
use poem::web::{Data, Html};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde::Serialize;

/// The permission this section defines. Codes are `<section id>.<action>`.
const VIEW: &str = "example.view";

register_section!(Section {
    id: "example",
    title: "Example",
    nav: Some(Nav { label: "Example", path: "/example", order: 900, icon: Some("beaker"), covers: &[] }),
    permissions: &[Permission {
        code: VIEW,
        label: "View the example section",
        description: "Open the example page and call its API operation.",
        // PSD2: only the permissions listed in PRODUCT.md may be exempt.
        second_factor_exempt: false,
        default_roles: &[BuiltinRole::Support, BuiltinRole::Operations],
    }],
    pages: &[page!(GET "/example" => index, Access::Permission(VIEW))],
    api: Some(Api::of::<ExampleApi>(&[operation!(GET "/example/greeting", Access::Permission(VIEW))])),
    templates: &[Template { name: "example/index", source: include_str!("../templates/index.hbs") }],
});

/// What the page shows and the API returns.
#[derive(Debug, Serialize, Object)]
pub struct Greeting {
    /// A greeting for the signed-in user.
    pub message: String,
    /// The user's company.
    pub company: String,
    /// How many of the company's projects the user may see.
    pub visible_projects: u32,
}

/// The service function: the one place where the section's logic lives.
pub async fn greeting(state: &AppState, principal: &Principal) -> Result<Greeting, AppError> {
    let projects = directory::visible_projects(&state.db, principal).await?;
    Ok(Greeting {
        message: format!("Hello, {}!", principal.display_name),
        company: principal.company_name.clone(),
        visible_projects: u32::try_from(projects.len()).unwrap_or(u32::MAX),
    })
}

/// The page: the service function's result through the section's template.
#[handler]
async fn index(page: PageContext) -> Result<Html<String>, AppError> {
    let greeting = greeting(&page.state, page.principal()?).await?;
    page.render("Example", "example/index", &greeting)
}

/// The API twin of the page.
#[derive(Default)]
pub struct ExampleApi;

#[OpenApi(prefix_path = "/example", tag = "ExampleTag::Example")]
impl ExampleApi {
    /// Greeting for the signed-in user
    ///
    /// Says hello and counts the projects the caller may see.
    #[oai(path = "/greeting", method = "get", operation_id = "example_greeting")]
    async fn greeting(&self, state: Data<&AppState>, principal: &Principal) -> ApiResult<Json<Greeting>> {
        Ok(Json(greeting(&state, principal).await?))
    }
}

#[derive(poem_openapi::Tags)]
enum ExampleTag {
    /// The example section, the template for new sections.
    Example,
}
