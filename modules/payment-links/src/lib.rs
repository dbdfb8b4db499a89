//! Payment links: a link for an amount (fixed, or entered by the customer within limits),
//! single use or reusable up to a number of payments, with an optional expiry and style;
//! customers pay it on the hosted Payment Page (`/pay/{link}`). The list filters, pages
//! and exports; a link's page shows its payments and a QR code, and deactivates it at
//! once. The service is the payments domain's (`links`): the pages and the API call the
//! same functions.

mod api;
mod pages;
mod qr;

use dashboard_core::hooks::DemoData;
use dashboard_core::registry::{Access, Api, BuiltinRole, Nav, Permission, Section, Template};
use dashboard_core::{operation, page, register, register_section};

const VIEW: &str = "payment_links.view";
const MANAGE: &str = "payment_links.manage";

register_section!(Section {
    id: "payment_links",
    title: "Payment links",
    nav: Some(Nav { label: "Payment links", path: "/payment-links", order: 250, icon: Some("link"), covers: &[] }),
    permissions: &[
        Permission {
            code: VIEW,
            label: "View payment links",
            description: "See payment links, their payments and QR codes.",
            second_factor_exempt: false,
            default_roles: &[BuiltinRole::Support, BuiltinRole::Operations],
        },
        Permission {
            code: MANAGE,
            label: "Create payment links",
            description: "Create payment links and deactivate them.",
            second_factor_exempt: false,
            default_roles: &[BuiltinRole::Support, BuiltinRole::Operations],
        },
    ],
    pages: &[
        page!(GET "/payment-links" => pages::list, Access::Permission(VIEW)),
        page!(GET "/payment-links/export" => pages::export, Access::Permission(VIEW)),
        page!(POST "/payment-links" => pages::create, Access::Permission(MANAGE)),
        page!(GET "/payment-links/:id" => pages::detail, Access::Permission(VIEW)),
        page!(GET "/payment-links/:id/qr.svg" => pages::qr_code, Access::Permission(VIEW)),
        page!(POST "/payment-links/:id/deactivation" => pages::deactivate, Access::Permission(MANAGE)),
    ],
    api: Some(Api::of::<api::LinksApi>(&[
        operation!(GET "/payment-links", Access::Permission(VIEW)),
        operation!(POST "/payment-links", Access::Permission(MANAGE)),
        operation!(GET "/payment-links/export", Access::Permission(VIEW)),
        operation!(GET "/payment-links/{id}", Access::Permission(VIEW)),
        operation!(GET "/payment-links/{id}/payments", Access::Permission(VIEW)),
        operation!(GET "/payment-links/{id}/qr.svg", Access::Permission(VIEW)),
        operation!(POST "/payment-links/{id}/deactivation", Access::Permission(MANAGE)),
    ])),
    templates: &[
        Template { name: "payment_links/list", source: include_str!("../templates/list.hbs") },
        Template { name: "payment_links/detail", source: include_str!("../templates/detail.hbs") },
    ],
});

// The demo company has links to open, pay and look at.
register!(DemoData {
    name: "payment links",
    order: 60,
    add: |db, demo| {
        Box::pin(async move {
            let Some(&project) = demo.project_ids.first() else { return Ok(0) };
            dashboard_payments_domain::links::add_demo(&db, demo.company_id, project).await
        })
    },
});
