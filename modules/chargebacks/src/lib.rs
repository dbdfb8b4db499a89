//! Chargebacks: the cases the acquirer opens when a customer's bank takes a payment's money
//! back. The registry lists them by deadline (4 business days to answer, the close ones
//! highlighted), with filters, search, pages and a CSV export; a case's page shows the
//! payment, the timeline and the deadline, and lets the merchant accept the chargeback or
//! dispute it with evidence files and a text. The service is the payments domain's
//! (`chargebacks`): the pages and the API call the same functions.

mod api;
mod pages;
mod reports;

use dashboard_core::registry::{Access, Api, BuiltinRole, Nav, Permission, Section, Template};
use dashboard_core::{operation, page, register, register_section};
use dashboard_payments_domain::chargebacks::MAX_EVIDENCE_BYTES;

const VIEW: &str = "chargebacks.view";
const MANAGE: &str = "chargebacks.manage";

register_section!(Section {
    id: "chargebacks",
    title: "Chargebacks",
    nav: Some(Nav { label: "Chargebacks", path: "/chargebacks", order: 350, icon: Some("shield"), covers: &[] }),
    permissions: &[
        Permission {
            code: VIEW,
            label: "View chargebacks",
            description: "See chargeback cases, their deadlines, timelines and evidence.",
            second_factor_exempt: false,
            // Both roles use the second factor already (payouts, fraud rules).
            default_roles: &[BuiltinRole::Finance, BuiltinRole::Risks],
        },
        Permission {
            code: MANAGE,
            label: "Answer chargebacks",
            description: "Accept chargebacks, or dispute them with evidence files and an explanation.",
            second_factor_exempt: false,
            default_roles: &[BuiltinRole::Finance, BuiltinRole::Risks],
        },
    ],
    pages: &[
        page!(GET "/chargebacks" => pages::list, Access::Permission(VIEW)),
        page!(GET "/chargebacks/export" => pages::export, Access::Permission(VIEW)),
        page!(GET "/chargebacks/:id" => pages::detail, Access::Permission(VIEW)),
        page!(GET "/chargebacks/:id/evidence/:file" => pages::evidence_file, Access::Permission(VIEW)),
        page!(POST "/chargebacks/:id/acceptance" => pages::accept, Access::Permission(MANAGE)),
        page!(POST "/chargebacks/:id/evidence" => pages::add_evidence, Access::Permission(MANAGE)),
        page!(POST "/chargebacks/:id/dispute" => pages::dispute, Access::Permission(MANAGE)),
    ],
    api: Some(Api::of::<api::ChargebacksApi>(&[
        operation!(GET "/chargebacks", Access::Permission(VIEW)),
        operation!(GET "/chargebacks/export", Access::Permission(VIEW)),
        operation!(GET "/chargebacks/{id}", Access::Permission(VIEW)),
        operation!(GET "/chargebacks/{id}/evidence/{evidence_id}", Access::Permission(VIEW)),
        operation!(POST "/chargebacks/{id}/acceptance", Access::Permission(MANAGE)),
        operation!(POST "/chargebacks/{id}/evidence", Access::Permission(MANAGE)),
        operation!(POST "/chargebacks/{id}/dispute", Access::Permission(MANAGE)),
    ])),
    templates: &[
        Template { name: "chargebacks/list", source: include_str!("../templates/list.hbs") },
        Template { name: "chargebacks/detail", source: include_str!("../templates/detail.hbs") },
    ],
});

// An evidence file (with a form's fields around it) is larger than a form.
register!(dashboard_core::hooks::Upload { path: "/chargebacks/{id}/evidence", limit: MAX_EVIDENCE_BYTES + 64 * 1024 });
register!(dashboard_core::hooks::Upload {
    path: "/api/v1/chargebacks/{id}/evidence",
    limit: MAX_EVIDENCE_BYTES + 64 * 1024,
});
