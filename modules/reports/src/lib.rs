//! Reports: files of the dashboard's data — payments, and whatever other sections declare
//! as report types (`dashboard_core::reports`) — for a period of days in the person's time
//! zone, with the matching registry's filters and the columns they choose, as CSV or XLSX.
//! A person asks for one (`service.rs`), a background job builds it with progress
//! (`build.rs`, writing with `file.rs`), and they download it while it is kept. The API
//! twins (`api.rs`) answer from the same functions.

pub mod api;
mod build;
mod file;
mod pages;
pub mod schedule;
mod schema;
pub mod service;

use dashboard_core::registry::{Access, Api, BuiltinRole, Nav, Permission, Section, Template};
use dashboard_core::{operation, page, register_section};

dashboard_core::register_migrations!(
    sqlite: "../../migrations/reports/sqlite",
    postgres: "../../migrations/reports/postgres",
);

/// Asking for, downloading, cancelling and deleting reports.
const MANAGE: &str = "reports.manage";

register_section!(Section {
    id: "reports",
    title: "Reports",
    nav: Some(Nav { label: "Reports", path: "/reports", order: 170, icon: Some("file"), covers: &[] }),
    permissions: &[Permission {
        code: MANAGE,
        label: "Manage reports",
        description: "Ask for reports of the data one may see, download, cancel and delete them.",
        // PRODUCT.md: managing reports is exempt from the second factor.
        second_factor_exempt: true,
        default_roles: &BuiltinRole::ALL,
    }],
    pages: &[
        page!(GET "/reports" => pages::list, Access::Permission(MANAGE)),
        page!(POST "/reports" => pages::create, Access::Permission(MANAGE)),
        page!(GET "/reports.csv" => pages::list_csv, Access::Permission(MANAGE)),
        page!(GET "/reports/new" => pages::new_report, Access::Permission(MANAGE)),
        page!(GET "/reports/schedules" => pages::schedules, Access::Permission(MANAGE)),
        page!(GET "/reports/schedules.csv" => pages::schedules_csv, Access::Permission(MANAGE)),
        page!(POST "/reports/schedules/:id/pause" => pages::pause, Access::Permission(MANAGE)),
        page!(POST "/reports/schedules/:id/resume" => pages::resume, Access::Permission(MANAGE)),
        page!(POST "/reports/schedules/:id/delete" => pages::delete_schedule, Access::Permission(MANAGE)),
        page!(GET "/reports/:id" => pages::detail, Access::Permission(MANAGE)),
        page!(GET "/reports/:id/file" => pages::download, Access::Permission(MANAGE)),
        page!(POST "/reports/:id/cancel" => pages::cancel, Access::Permission(MANAGE)),
        page!(POST "/reports/:id/delete" => pages::delete, Access::Permission(MANAGE)),
    ],
    api: Some(Api::of::<(api::ReportsApi, api::SchedulesApi)>(&[
        operation!(GET "/reports/types", Access::Permission(MANAGE)),
        operation!(POST "/reports", Access::Permission(MANAGE)),
        operation!(GET "/reports", Access::Permission(MANAGE)),
        operation!(GET "/reports/{id}", Access::Permission(MANAGE)),
        operation!(GET "/reports/{id}/file", Access::Permission(MANAGE)),
        operation!(POST "/reports/{id}/cancel", Access::Permission(MANAGE)),
        operation!(DELETE "/reports/{id}", Access::Permission(MANAGE)),
        operation!(POST "/reports/schedules", Access::Permission(MANAGE)),
        operation!(GET "/reports/schedules", Access::Permission(MANAGE)),
        operation!(GET "/reports/schedules/{id}", Access::Permission(MANAGE)),
        operation!(POST "/reports/schedules/{id}/pause", Access::Permission(MANAGE)),
        operation!(POST "/reports/schedules/{id}/resume", Access::Permission(MANAGE)),
        operation!(DELETE "/reports/schedules/{id}", Access::Permission(MANAGE)),
    ])),
    templates: &[
        Template { name: "reports/list", source: include_str!("../templates/list.hbs") },
        Template { name: "reports/new", source: include_str!("../templates/new.hbs") },
        Template { name: "reports/detail", source: include_str!("../templates/detail.hbs") },
        Template { name: "reports/schedules", source: include_str!("../templates/schedules.hbs") },
    ],
});
