//! Payments: the gateway API that integrators call with API tokens (purchases, captures,
//! releases, refunds, payouts), and the sandbox's 3-D Secure challenge page. The
//! operations themselves live in the payments domain crate, for every section.

mod api;
mod columns;
mod pages;
mod reports;

use dashboard_core::registry::{Access, Api, BuiltinRole, Nav, Permission, Section, Template};
use dashboard_core::{operation, page, register_section};

const VIEW: &str = "payments.view";
const REFUND: &str = "payments.refund";
const CAPTURE: &str = "payments.capture";
const CREATE: &str = "payments.create";
const PAYOUT: &str = "payments.payout";

register_section!(Section {
    id: "payments",
    title: "Payments",
    nav: Some(Nav { label: "Payments", path: "/payments", order: 100, icon: Some("card"), covers: &[] }),
    permissions: &[
        Permission {
            code: VIEW,
            label: "View payments",
            description: "See the payment registry and each payment's information.",
            // PSD2 exemptions listed in the seed: viewing the registry and payment information.
            second_factor_exempt: true,
            default_roles: &BuiltinRole::ALL,
        },
        Permission {
            code: REFUND,
            label: "Refund payments",
            description: "Refund all or part of a captured payment.",
            // PSD2 exemption listed in the seed: issuing refunds.
            second_factor_exempt: true,
            default_roles: &[BuiltinRole::Support, BuiltinRole::Operations, BuiltinRole::Finance],
        },
        Permission {
            code: CAPTURE,
            label: "Capture and release held funds",
            description: "Capture all or part of an authorised (two-step) payment, or release it.",
            // PSD2 exemption listed in the seed: capturing and releasing held funds.
            second_factor_exempt: true,
            default_roles: &[BuiltinRole::Operations, BuiltinRole::Finance],
        },
        Permission {
            code: CREATE,
            label: "Make purchases",
            description: "Charge or authorise a card through the gateway API.",
            second_factor_exempt: false,
            default_roles: &[BuiltinRole::Operations],
        },
        Permission {
            code: PAYOUT,
            label: "Make payouts",
            description: "Send money to a card.",
            second_factor_exempt: false,
            default_roles: &[BuiltinRole::Finance],
        },
    ],
    pages: &[
        page!(GET "/payments" => pages::registry, Access::Permission(VIEW)),
        page!(GET "/payments/export.csv" => pages::export_csv, Access::Permission(VIEW)),
        page!(GET "/payments/export.xlsx" => pages::export_xlsx, Access::Permission(VIEW)),
        page!(POST "/payments/columns" => pages::save_columns, Access::Permission(VIEW)),
        page!(GET "/payments/:id" => pages::detail, Access::Permission(VIEW)),
        page!(POST "/payments/:id/refund" => pages::refund, Access::Permission(REFUND)),
        page!(POST "/payments/:id/capture" => pages::capture, Access::Permission(CAPTURE)),
        page!(POST "/payments/:id/release" => pages::release, Access::Permission(CAPTURE)),
        page!(POST "/payments/:id/callbacks/:delivery/resend" => pages::resend, Access::Permission(VIEW)),
        page!(GET "/sandbox/3ds/:id" => pages::challenge, Access::Public),
        page!(POST "/sandbox/3ds/:id" => pages::challenge_submit, Access::Public),
    ],
    api: Some(Api::of::<api::PaymentsApi>(&[
        operation!(POST "/payments", Access::Permission(CREATE)),
        operation!(GET "/payments", Access::Permission(VIEW)),
        operation!(GET "/payments/export", Access::Permission(VIEW)),
        operation!(GET "/payments/columns", Access::Permission(VIEW)),
        operation!(PUT "/payments/columns", Access::Permission(VIEW)),
        operation!(GET "/payments/{id}", Access::Permission(VIEW)),
        operation!(POST "/payments/{id}/captures", Access::Permission(CAPTURE)),
        operation!(POST "/payments/{id}/cancellations", Access::Permission(CAPTURE)),
        operation!(POST "/payments/{id}/refunds", Access::Permission(REFUND)),
        operation!(POST "/payments/{id}/reversals", Access::Permission(REFUND)),
        operation!(POST "/payouts", Access::Permission(PAYOUT)),
        operation!(POST "/payouts/confirmations", Access::Permission(PAYOUT)),
        operation!(GET "/payments/{id}/callbacks", Access::Permission(VIEW)),
        operation!(POST "/payments/{id}/callbacks/{delivery}/resend", Access::Permission(VIEW)),
        operation!(GET "/balances", Access::Permission(VIEW)),
    ])),
    templates: &[
        Template { name: "payments/challenge", source: include_str!("../templates/challenge.hbs") },
        Template { name: "payments/list", source: include_str!("../templates/list.hbs") },
        Template { name: "payments/detail", source: include_str!("../templates/detail.hbs") },
        Template { name: "payments/confirm", source: include_str!("../templates/confirm.hbs") },
    ],
});

/// The columns of payment exports.
const EXPORT_COLUMNS: &[&str] = &[
    "id",
    "created_at",
    "time_zone",
    "project_id",
    "type",
    "method",
    "status",
    "amount",
    "currency",
    "merchant_order_id",
    "customer_email",
    "customer_country",
    "card_brand",
    "card_last4",
    "decline_reason",
];
/// The export columns that are numbers (for XLSX).
const EXPORT_NUMBERS: &[usize] = &[3, 7];

/// A payment as a row of a file people open: its time where they are (`created`: the time
/// and the zone), words for its type, method and status (as the registry shows them).
fn export_row(p: dashboard_payments_domain::search::PaymentSummary, created: [String; 2]) -> Vec<String> {
    use dashboard_core::export::safe_text;
    let text = |v: Option<String>| v.map(safe_text).unwrap_or_default();
    let label = |set: &str, value: String| dashboard_core::labels::find(set, &value).map_or(value, str::to_owned);
    let [created_at, zone] = created;
    vec![
        p.id,
        created_at,
        zone,
        p.project_id.to_string(),
        label("payment_kind", p.kind),
        label("payment_method", p.method),
        label("payment_status", p.status),
        dashboard_core::money::format_decimal(p.amount.amount, &p.amount.currency),
        p.amount.currency,
        text(p.merchant_order_id),
        text(p.customer_email),
        text(p.customer_country),
        text(p.card_brand),
        text(p.card_last4),
        text(p.decline_reason),
    ]
}

/// The file of every payment matching `filter`, as CSV (streamed) or XLSX.
async fn export(
    state: dashboard_core::AppState,
    principal: dashboard_core::Principal,
    filter: dashboard_payments_domain::search::PaymentFilter,
    xlsx: bool,
) -> Result<poem::Response, dashboard_core::AppError> {
    let rows = dashboard_payments_domain::search::export_rows(&state, &principal, &filter, export_row).await?;
    if xlsx {
        dashboard_core::export::xlsx_download("payments.xlsx", EXPORT_COLUMNS, EXPORT_NUMBERS, rows).await
    } else {
        Ok(dashboard_core::export::csv_download("payments.csv", EXPORT_COLUMNS, rows))
    }
}
