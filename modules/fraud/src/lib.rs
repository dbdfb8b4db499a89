//! Fraud: the company's block and allow lists, its rules (written in a small language,
//! with a builder on the page), the queue of payments a rule held for review, and
//! backtests that try a rule on past payments before it is enabled. The rules screen
//! every purchase and payout in the payments domain's write that starts it
//! (`fraud::screening`); the pages and the API call the same functions.

mod api;
mod pages;

use dashboard_core::registry::{Access, Api, BuiltinRole, Nav, Permission, Section, Template};
use dashboard_core::{operation, page, register, register_section};

const VIEW: &str = "fraud.view";
const MANAGE: &str = "fraud.manage";
const REVIEW: &str = "fraud.review";

register_section!(Section {
    id: "fraud",
    title: "Fraud",
    nav: Some(Nav { label: "Fraud", path: "/fraud", order: 340, icon: Some("inspect"), covers: &[] }),
    permissions: &[
        Permission {
            code: VIEW,
            label: "View fraud rules, lists and reviews",
            description: "See the fraud rules, the block and allow lists, the payments held for review and backtests.",
            second_factor_exempt: false,
            default_roles: &[BuiltinRole::Risks],
        },
        Permission {
            code: MANAGE,
            label: "Change fraud rules and lists",
            description: "Write, enable and delete rules, add to and remove from the block and allow lists, run backtests.",
            second_factor_exempt: false,
            default_roles: &[BuiltinRole::Risks],
        },
        Permission {
            code: REVIEW,
            label: "Decide held payments",
            description: "Approve (capture) or decline (release) payments a fraud rule held for review.",
            second_factor_exempt: false,
            default_roles: &[BuiltinRole::Risks],
        },
    ],
    pages: &[
        page!(GET "/fraud" => pages::rules_page, Access::Permission(VIEW)),
        page!(GET "/fraud/rules/export" => pages::export_rules, Access::Permission(VIEW)),
        page!(GET "/fraud/rules/new" => pages::new_rule, Access::Permission(MANAGE)),
        page!(POST "/fraud/rules" => pages::create_rule, Access::Permission(MANAGE)),
        page!(GET "/fraud/rules/:id" => pages::rule_page, Access::Permission(VIEW)),
        page!(POST "/fraud/rules/:id" => pages::update_rule, Access::Permission(MANAGE)),
        page!(POST "/fraud/rules/:id/deletion" => pages::delete_rule, Access::Permission(MANAGE)),
        page!(GET "/fraud/lists" => pages::lists_page, Access::Permission(VIEW)),
        page!(GET "/fraud/lists/export" => pages::export_lists, Access::Permission(VIEW)),
        page!(POST "/fraud/lists" => pages::add_entry, Access::Permission(MANAGE)),
        page!(POST "/fraud/lists/import" => pages::import_entries, Access::Permission(MANAGE)),
        page!(POST "/fraud/lists/:id/removal" => pages::remove_entry, Access::Permission(MANAGE)),
        page!(GET "/fraud/reviews" => pages::reviews_page, Access::Permission(VIEW)),
        page!(GET "/fraud/reviews/export" => pages::export_reviews, Access::Permission(VIEW)),
        page!(POST "/fraud/reviews/:id/decision" => pages::decide, Access::Permission(REVIEW)),
        page!(GET "/fraud/backtests" => pages::backtests, Access::Permission(VIEW)),
        page!(POST "/fraud/backtests" => pages::start_backtest, Access::Permission(MANAGE)),
        page!(GET "/fraud/backtests/:id" => pages::backtest_page, Access::Permission(VIEW)),
    ],
    api: Some(Api::of::<api::FraudApi>(&[
        operation!(GET "/fraud/rules", Access::Permission(VIEW)),
        operation!(POST "/fraud/rules", Access::Permission(MANAGE)),
        operation!(GET "/fraud/rules/export", Access::Permission(VIEW)),
        operation!(GET "/fraud/rules/{id}", Access::Permission(VIEW)),
        operation!(PUT "/fraud/rules/{id}", Access::Permission(MANAGE)),
        operation!(DELETE "/fraud/rules/{id}", Access::Permission(MANAGE)),
        operation!(GET "/fraud/lists", Access::Permission(VIEW)),
        operation!(POST "/fraud/lists", Access::Permission(MANAGE)),
        operation!(GET "/fraud/lists/export", Access::Permission(VIEW)),
        operation!(POST "/fraud/lists/import", Access::Permission(MANAGE)),
        operation!(DELETE "/fraud/lists/{id}", Access::Permission(MANAGE)),
        operation!(GET "/fraud/reviews", Access::Permission(VIEW)),
        operation!(GET "/fraud/reviews/export", Access::Permission(VIEW)),
        operation!(GET "/fraud/reviews/{id}", Access::Permission(VIEW)),
        operation!(POST "/fraud/reviews/{id}/decision", Access::Permission(REVIEW)),
        operation!(GET "/fraud/backtests", Access::Permission(VIEW)),
        operation!(POST "/fraud/backtests", Access::Permission(MANAGE)),
        operation!(GET "/fraud/backtests/{id}", Access::Permission(VIEW)),
    ])),
    templates: &[
        Template { name: "fraud/tabs", source: include_str!("../templates/tabs.hbs") },
        Template { name: "fraud/rules", source: include_str!("../templates/rules.hbs") },
        Template { name: "fraud/rule", source: include_str!("../templates/rule.hbs") },
        Template { name: "fraud/lists", source: include_str!("../templates/lists.hbs") },
        Template { name: "fraud/reviews", source: include_str!("../templates/reviews.hbs") },
        Template { name: "fraud/backtests", source: include_str!("../templates/backtests.hbs") },
        Template { name: "fraud/backtest", source: include_str!("../templates/backtest.hbs") },
    ],
});

/// A list file (with a form's fields around it) is larger than a form.
const MOST_FILE_BYTES: usize = 2 * 1024 * 1024;

register!(dashboard_core::hooks::Upload { path: "/fraud/lists/import", limit: MOST_FILE_BYTES + 64 * 1024 });
register!(dashboard_core::hooks::Upload { path: "/api/v1/fraud/lists/import", limit: MOST_FILE_BYTES });

// The demo company has the usual rules and a few list entries.
register!(dashboard_core::hooks::DemoData {
    name: "fraud rules and lists",
    order: 70,
    add: |db, demo| {
        Box::pin(async move {
            let rules = dashboard_payments_domain::fraud::rules::add_demo(&db, demo.company_id).await?;
            Ok(rules + dashboard_payments_domain::fraud::lists::add_demo(&db, demo.company_id).await?)
        })
    },
});
