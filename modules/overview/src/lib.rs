//! The overview: the home page after sign-in, and the analytics. A user who may see the
//! analytics starts on them (KPIs, charts, breakdowns, saved boards); anyone else on the
//! company, the projects they may see and the sections they can open.

mod api;
pub mod boards;
pub mod charts;
pub mod direct;
pub mod figures;
mod labels;
pub mod measures;
mod pages;
pub mod rollup;
pub mod schema;
pub mod scope;
pub mod service;
mod view;

use dashboard_core::auth::{Principal, allowed};
use dashboard_core::hooks::{Command, DemoData, Job};
use dashboard_core::registry::{Access, Api, BuiltinRole, Nav, Permission, Section};
use dashboard_core::{
    ApiResult, AppError, AppState, PageContext, directory, operation, page, register, register_section,
};
use poem::handler;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde::Serialize;

register_section!(Section {
    id: "overview",
    title: "Overview",
    // The analytics' own pages are the overview's sub-pages.
    nav: Some(Nav { label: "Overview", path: "/", order: 0, icon: Some("home"), covers: &["/analytics"] }),
    permissions: &[],
    pages: &[page!(GET "/" => index, Access::SignedIn)],
    api: Some(Api::of::<OverviewApi>(&[operation!(GET "/overview", Access::SignedIn)])),
    templates: &[dashboard_core::Template { name: "overview/index", source: include_str!("../templates/index.hbs") }],
});

/// Seeing the analytics (KPIs, charts, breakdowns) and keeping one's boards.
pub const ANALYTICS: &str = "analytics.view";

register_section!(Section {
    id: "analytics",
    title: "Analytics",
    // The home page ("Overview") is the analytics for those who may see them.
    nav: None,
    permissions: &[Permission {
        code: ANALYTICS,
        label: "View analytics",
        description: "See KPIs, charts and breakdowns of payments and money, and keep boards of them.",
        second_factor_exempt: false,
        // Risks can be given it with a custom role; their built-in role needs no second factor.
        default_roles: &[BuiltinRole::Operations, BuiltinRole::Finance],
    }],
    pages: &[
        page!(GET "/analytics" => pages::analytics, Access::Permission(ANALYTICS)),
        page!(GET "/analytics/kpis.csv" => pages::kpis_csv, Access::Permission(ANALYTICS)),
        page!(GET "/analytics/charts/:key" => pages::chart_page, Access::Permission(ANALYTICS)),
        page!(GET "/analytics/charts/:key/chart.svg" => pages::chart_svg, Access::Permission(ANALYTICS)),
        page!(GET "/analytics/charts/:key/data.csv" => pages::chart_csv, Access::Permission(ANALYTICS)),
        page!(POST "/analytics/boards" => pages::save_board, Access::Permission(ANALYTICS)),
        page!(GET "/analytics/boards/:id" => pages::open_board, Access::Permission(ANALYTICS)),
        page!(POST "/analytics/boards/:id/delete" => pages::delete_board, Access::Permission(ANALYTICS)),
    ],
    api: Some(Api::of::<api::AnalyticsApi>(&[
        operation!(GET "/analytics/overview", Access::Permission(ANALYTICS)),
        operation!(GET "/analytics/breakdowns/{dimension}", Access::Permission(ANALYTICS)),
        operation!(GET "/analytics/boards", Access::Permission(ANALYTICS)),
        operation!(POST "/analytics/boards", Access::Permission(ANALYTICS)),
        operation!(DELETE "/analytics/boards/{id}", Access::Permission(ANALYTICS)),
    ])),
    templates: &[
        dashboard_core::Template { name: "analytics/overview", source: include_str!("../templates/analytics.hbs") },
        dashboard_core::Template { name: "analytics/chart", source: include_str!("../templates/chart.hbs") },
        dashboard_core::Template { name: "analytics/invalid", source: include_str!("../templates/invalid.hbs") },
    ],
});

register!(Job {
    name: "analytics rollups",
    every: std::time::Duration::from_secs(2),
    run: |state| Box::pin(async move { rollup::catch_up(&state.db).await.map(|_| ()) }),
});

dashboard_core::register_migrations!(
    sqlite: "../../migrations/overview/sqlite",
    postgres: "../../migrations/overview/postgres",
);

// The analytics are ready when the demo server starts, not a round of its job later.
register!(DemoData {
    name: "analytics rollups",
    order: 100,
    add: |db, _demo| {
        Box::pin(async move {
            if rollup::has_pending_changes(&db).await? {
                rollup::rebuild(&db).await?;
            }
            Ok(0)
        })
    },
});

register!(Command {
    name: "analytics",
    define: || {
        clap::Command::new("analytics").about("The analytics' rollups").subcommand_required(true).subcommand(
            clap::Command::new("rebuild").about(
                "Recompute every rollup from the payments and operations (the server keeps them up to date on \
                 its own; this is for a restored or repaired database).",
            ),
        )
    },
    run: |db, _matches| {
        Box::pin(async move {
            let started = std::time::Instant::now();
            let days = rollup::rebuild(&db).await?;
            println!("Rebuilt the analytics: {days} days of rollups in {:.1} s.", started.elapsed().as_secs_f64());
            Ok(())
        })
    },
});

/// A project as the overview lists it.
#[derive(Debug, Serialize, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct OverviewProject {
    pub id: i64,
    pub name: String,
    /// When the platform operator created it (RFC 3339, UTC).
    pub created_at: dashboard_core::time::Timestamp,
}

/// A section the user can open.
#[derive(Debug, Serialize, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SectionItem {
    pub id: String,
    pub label: String,
    pub path: String,
    /// Name of the navigation icon.
    pub icon: String,
}

/// The signed-in user's starting point.
#[derive(Debug, Serialize, Object)]
#[oai(skip_serializing_if_is_none)]
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
            created_at: dashboard_core::time::Timestamp::from(&project.created_at),
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

/// The home page: the analytics for those who may see them, the welcome page otherwise.
#[handler]
async fn index(page: PageContext, request: &poem::Request) -> Result<poem::Response, AppError> {
    if page.principal()?.has_permission(ANALYTICS) {
        return pages::overview(&page, request).await;
    }
    let overview = overview(&page.state, page.principal()?).await?;
    Ok(poem::IntoResponse::into_response(page.render("Overview", "overview/index", &overview)?))
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
