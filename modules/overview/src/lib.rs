//! The overview: the home page after sign-in. It shows the company, the projects the
//! user may see and the sections they can open; analytics will live here.

use dashboard_core::auth::{Principal, allowed};
use dashboard_core::registry::{Access, Api, Nav, Section};
use dashboard_core::{ApiResult, AppError, AppState, PageContext, directory, operation, page, register_section};
use poem::handler;
use poem::web::{Data, Html};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde::Serialize;

register_section!(Section {
    id: "overview",
    title: "Overview",
    nav: Some(Nav { label: "Overview", path: "/", order: 0, icon: Some("home") }),
    permissions: &[],
    pages: &[page!(GET "/" => index, Access::SignedIn)],
    api: Some(Api::of::<OverviewApi>(&[operation!(GET "/overview", Access::SignedIn)])),
    templates: &[dashboard_core::Template { name: "overview/index", source: include_str!("../templates/index.hbs") }],
});

/// A project as the overview lists it.
#[derive(Debug, Serialize, Object)]
pub struct OverviewProject {
    pub id: i64,
    pub name: String,
    /// When the platform operator created it (RFC 3339, UTC).
    pub created_at: String,
}

/// A section the user can open.
#[derive(Debug, Serialize, Object)]
pub struct SectionItem {
    pub id: String,
    pub label: String,
    pub path: String,
    /// Name of the navigation icon.
    pub icon: String,
}

/// The signed-in user's starting point.
#[derive(Debug, Serialize, Object)]
pub struct Overview {
    pub company: String,
    pub user: String,
    pub projects: Vec<OverviewProject>,
    pub sections: Vec<SectionItem>,
}

/// Service function shared by the page and the API.
pub async fn overview(state: &AppState, principal: &Principal) -> Result<Overview, AppError> {
    let projects = directory::visible_projects(&state.db, principal)
        .await?
        .into_iter()
        .map(|project| OverviewProject {
            id: project.id,
            name: project.name,
            created_at: dashboard_core::time::rfc3339(&project.created_at),
        })
        .collect();
    let sections = state
        .registry
        .nav()
        .iter()
        .filter(|entry| entry.section != "overview" && allowed(Some(principal), entry.access))
        .map(|entry| SectionItem {
            id: entry.section.to_owned(),
            label: entry.label.to_owned(),
            path: entry.path.to_owned(),
            icon: entry.icon.unwrap_or("file").to_owned(),
        })
        .collect();
    Ok(Overview { company: principal.company_name.clone(), user: principal.display_name.clone(), projects, sections })
}

#[handler]
async fn index(page: PageContext) -> Result<Html<String>, AppError> {
    let overview = overview(&page.state, page.principal()?).await?;
    page.render("Overview", "overview/index", &overview)
}

#[derive(Default)]
pub struct OverviewApi;

#[OpenApi(tag = "OverviewTag::Overview")]
impl OverviewApi {
    /// The caller's company, projects and sections
    #[oai(path = "/overview", method = "get", operation_id = "overview_get")]
    async fn get(&self, state: Data<&AppState>, principal: &Principal) -> ApiResult<Json<Overview>> {
        Ok(Json(overview(&state, principal).await?))
    }
}

#[derive(poem_openapi::Tags)]
enum OverviewTag {
    /// The home page's data.
    Overview,
}
