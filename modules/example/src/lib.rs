//! The example section: a small, complete section to copy when you add one (the README's
//! "Adding a section" walks through it).
//!
//! A section is one crate that depends on `dashboard-core` (and on domain crates such as
//! `dashboard-payments-domain` where it needs them, never on another section). It
//! declares itself with one `register_section!` call (below) and is linked into the
//! binary by one line in `app/src/lib.rs`: `use dashboard_example as _;`. It has:
//! - permissions (`example.view`, `example.write`), with the built-in roles that hold them
//!   by default and whether they may be used without the second factor;
//! - pages (`GET /example`, `POST /example/notes`) and API operations
//!   (`GET /api/v1/example/greeting`, `GET|POST /api/v1/example/notes`), calling the same
//!   service functions (`notes.rs`), each declaring the access it requires;
//! - a navigation entry and a template (`templates/index.hbs`);
//! - a table (`example_notes`) defined in `schema.rs`, its migrations in
//!   `migrations/example/{sqlite,postgres}`, registered below;
//! - a story test in `e2e.rs`, which the workspace's end-to-end binary picks up.
//!
//! This section is for developers: only the tests build it (the app's `example`
//! feature), so the dashboard merchants run does not show it.

pub mod notes;
pub mod schema;

use dashboard_core::auth::Principal;
use dashboard_core::registry::{Access, Api, Nav, Permission, Section, Template};
use dashboard_core::web::{HtmlForm, see_other};
use dashboard_core::{ApiResult, AppError, AppState, PageContext, directory, operation, page, register_section};
use poem::web::{Data, Html};
use poem::{Response, handler};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde::{Deserialize, Serialize};

use crate::notes::Note;

/// The permissions this section defines. Codes are `<section id>.<action>`.
const VIEW: &str = "example.view";
const WRITE: &str = "example.write";

register_section!(Section {
    id: "example",
    title: "Example",
    nav: Some(Nav { label: "Example", path: "/example", order: 900, icon: Some("beaker"), covers: &[] }),
    permissions: &[
        Permission {
            code: VIEW,
            label: "View the example section",
            description: "Open the example page and read its notes, also through the API.",
            // PSD2: only the permissions listed in PRODUCT.md may be exempt.
            second_factor_exempt: false,
            // A permission that needs the second factor makes every holder set it up: give
            // it to a built-in role only where PRODUCT.md says so. The merchant admin holds
            // every permission.
            default_roles: &[],
        },
        Permission {
            code: WRITE,
            label: "Write example notes",
            description: "Leave a note for the company on the example page or through the API.",
            second_factor_exempt: false,
            default_roles: &[],
        },
    ],
    pages: &[
        page!(GET "/example" => index, Access::Permission(VIEW)),
        // Forms need no CSRF code of their own: the page guard checks every POST.
        page!(POST "/example/notes" => add_note, Access::Permission(WRITE)),
    ],
    api: Some(Api::of::<ExampleApi>(&[
        operation!(GET "/example/greeting", Access::Permission(VIEW)),
        operation!(GET "/example/notes", Access::Permission(VIEW)),
        operation!(POST "/example/notes", Access::Permission(WRITE)),
    ])),
    templates: &[Template { name: "example/index", source: include_str!("../templates/index.hbs") }],
});

// The section's tables: its migrations, run with every other crate's in version order.
dashboard_core::register_migrations!(
    sqlite: "../../migrations/example/sqlite",
    postgres: "../../migrations/example/postgres",
);

/// What the page shows and the API returns.
#[derive(Debug, Serialize, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Greeting {
    /// A greeting for the signed-in user.
    pub message: String,
    /// The user's company.
    pub company: String,
    /// How many of the company's projects the user may see.
    pub visible_projects: u32,
}

/// A service function: the section's logic, for the page and the API alike.
pub async fn greeting(state: &AppState, principal: &Principal) -> Result<Greeting, AppError> {
    let projects = directory::visible_projects(&state.db, principal).await?;
    Ok(Greeting {
        message: format!("Hello, {}!", principal.display_name),
        company: principal.company_name.clone(),
        visible_projects: u32::try_from(projects.len()).unwrap_or(u32::MAX),
    })
}

/// The page: the service functions' results through the section's template.
#[handler]
async fn index(page: PageContext) -> Result<Html<String>, AppError> {
    let principal = page.principal()?;
    let greeting = greeting(&page.state, principal).await?;
    let notes = notes::latest(&page.state, principal).await?;
    let data = serde_json::json!({
        "greeting": greeting,
        "notes": notes,
        "can_write": principal.permissions.contains(WRITE),
        "max_note": notes::MAX_NOTE,
        "csrf_token": page.csrf_token,
    });
    page.render("Example", "example/index", &data)
}

#[derive(Deserialize)]
struct NoteForm {
    text: String,
}

/// The form's twin of `POST /api/v1/example/notes`; back to the page afterwards.
#[handler]
async fn add_note(page: PageContext, HtmlForm(form): HtmlForm<NoteForm>) -> Result<Response, AppError> {
    notes::add(&page.state, page.principal()?, &form.text).await?;
    Ok(see_other("/example"))
}

/// The API twin of the pages.
#[derive(Default)]
pub struct ExampleApi;

/// A new note.
#[derive(Debug, Deserialize, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct NewNote {
    /// 1 to 500 characters.
    #[oai(validator(min_length = 1, max_length = 500))]
    pub text: String,
}

/// The answer of `POST /example/notes`.
#[derive(ApiResponse)]
pub enum NoteCreated {
    /// The note was added.
    #[oai(status = 201)]
    Created(Json<Note>),
}

#[OpenApi(prefix_path = "/example", tag = "ExampleTag::Example")]
impl ExampleApi {
    /// Greeting for the signed-in user
    ///
    /// Says hello and counts the projects the caller may see.
    #[oai(path = "/greeting", method = "get", operation_id = "example_greeting")]
    async fn greeting(&self, state: Data<&AppState>, principal: &Principal) -> ApiResult<Json<Greeting>> {
        Ok(Json(greeting(&state, principal).await?))
    }

    /// The company's newest notes
    #[oai(path = "/notes", method = "get", operation_id = "example_notes")]
    async fn notes(&self, state: Data<&AppState>, principal: &Principal) -> ApiResult<Json<Vec<Note>>> {
        Ok(Json(notes::latest(&state, principal).await?))
    }

    /// Leave a note for the company
    #[oai(path = "/notes", method = "post", operation_id = "example_add_note")]
    async fn add_note(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        body: Json<NewNote>,
    ) -> ApiResult<NoteCreated> {
        Ok(NoteCreated::Created(Json(notes::add(&state, principal, &body.text).await?)))
    }
}

#[derive(poem_openapi::Tags)]
enum ExampleTag {
    /// The example section, the template for new sections.
    Example,
}
