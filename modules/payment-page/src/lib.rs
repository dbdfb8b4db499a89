//! The Payment Page: its designer and the hosted page itself.
//!
//! In the designer, people give each project named styles (colours, font, corner radius,
//! logo, background, texts in English and one more language), see them live on the real
//! page with test data at desktop and phone widths, and publish one; every publication is
//! kept and can be published again. The hosted page (`/pay/{link}`, no sign-in) shows a
//! payment link in its style and takes the card: it pays through the payment service like
//! any purchase, 3-D Secure included, then sends the customer to the project's success or
//! failure URL with a signature the shop can check. The services are the payments
//! domain's (`page_styles`, `links`, `checkout`).

mod api;
mod designer;
mod hosted;

use dashboard_core::hooks::{DemoData, Job, Service, Setting, Upload, check_number_up_to};
use dashboard_core::registry::{Access, Api, BuiltinRole, Nav, Permission, Section, Template};
use dashboard_core::{operation, page, register, register_section};
use dashboard_payments_domain::page_styles::MAX_IMAGE_BYTES;

const VIEW: &str = "payment_page.view";
const MANAGE: &str = "payment_page.manage";

register_section!(Section {
    id: "payment_page",
    title: "Payment Page",
    nav: Some(Nav { label: "Payment Page", path: "/payment-page", order: 720, icon: Some("brush"), covers: &[] }),
    permissions: &[
        Permission {
            code: VIEW,
            label: "View Payment Page styles",
            description: "See the Payment Page styles of the projects, their previews and what was published.",
            second_factor_exempt: false,
            default_roles: &[BuiltinRole::Operations],
        },
        Permission {
            code: MANAGE,
            label: "Design the Payment Page",
            description: "Create, edit, duplicate and delete styles; publish one, or an earlier version again.",
            second_factor_exempt: false,
            default_roles: &[BuiltinRole::Operations],
        },
    ],
    pages: &[
        page!(GET "/payment-page" => designer::index, Access::Permission(VIEW)),
        page!(POST "/payment-page/styles" => designer::create, Access::Permission(MANAGE)),
        page!(GET "/payment-page/styles/:id" => designer::editor, Access::Permission(VIEW)),
        page!(POST "/payment-page/styles/:id" => designer::save, Access::Permission(MANAGE)),
        page!(POST "/payment-page/styles/:id/images" => designer::upload, Access::Permission(MANAGE)),
        page!(GET "/payment-page/styles/:id/preview" => designer::preview_saved, Access::Permission(VIEW)),
        page!(POST "/payment-page/styles/:id/preview" => designer::preview_form, Access::Permission(VIEW)),
        page!(GET "/payment-page/preview.css" => designer::preview_css, Access::Permission(VIEW)),
        page!(POST "/payment-page/styles/:id/duplicate" => designer::duplicate, Access::Permission(MANAGE)),
        page!(POST "/payment-page/styles/:id/deletion" => designer::delete, Access::Permission(MANAGE)),
        page!(POST "/payment-page/styles/:id/publication" => designer::publish, Access::Permission(MANAGE)),
        page!(POST "/payment-page/versions/:id/revert" => designer::revert, Access::Permission(MANAGE)),
        page!(GET "/payment-page/assets/designer.js" => designer::script, Access::Permission(VIEW)),
        page!(GET "/pay/:link" => hosted::link_page, Access::Public),
        page!(POST "/pay/:link" => hosted::pay, Access::Public),
        page!(GET "/pay/:link/done" => hosted::done, Access::Public),
        page!(GET "/pay/assets/:file" => hosted::asset, Access::Public),
        page!(GET "/pay/looks/:file" => hosted::look_css, Access::Public),
        page!(GET "/pay/images/:address" => hosted::image, Access::Public),
    ],
    api: Some(Api::of::<api::PaymentPageApi>(&[
        operation!(GET "/payment-page/styles", Access::Permission(VIEW)),
        operation!(POST "/payment-page/styles", Access::Permission(MANAGE)),
        operation!(GET "/payment-page/styles/{id}", Access::Permission(VIEW)),
        operation!(PUT "/payment-page/styles/{id}", Access::Permission(MANAGE)),
        operation!(DELETE "/payment-page/styles/{id}", Access::Permission(MANAGE)),
        operation!(PUT "/payment-page/styles/{id}/logo", Access::Permission(MANAGE)),
        operation!(DELETE "/payment-page/styles/{id}/logo", Access::Permission(MANAGE)),
        operation!(PUT "/payment-page/styles/{id}/background", Access::Permission(MANAGE)),
        operation!(DELETE "/payment-page/styles/{id}/background", Access::Permission(MANAGE)),
        operation!(POST "/payment-page/styles/{id}/duplicate", Access::Permission(MANAGE)),
        operation!(POST "/payment-page/styles/{id}/publication", Access::Permission(MANAGE)),
        operation!(GET "/payment-page/versions", Access::Permission(VIEW)),
        operation!(POST "/payment-page/versions/{id}/revert", Access::Permission(MANAGE)),
    ])),
    templates: &[
        Template { name: "payment_page/index", source: include_str!("../templates/index.hbs") },
        Template { name: "payment_page/editor", source: include_str!("../templates/editor.hbs") },
        Template { name: "payment_page/hosted", source: include_str!("../templates/hosted.hbs") },
    ],
});

// An image (with a form's fields around it) is larger than a form; the API takes the
// image alone.
register!(Upload { path: "/payment-page/styles/{id}/images", limit: MAX_IMAGE_BYTES + 64 * 1024 });
register!(Upload { path: "/api/v1/payment-page/styles/{id}/logo", limit: MAX_IMAGE_BYTES });
register!(Upload { path: "/api/v1/payment-page/styles/{id}/background", limit: MAX_IMAGE_BYTES });

const PER_ADDRESS: &str = "pay_attempts_per_minute_per_address";
const PER_LINK: &str = "pay_attempts_per_minute_per_link";

register!(Setting {
    name: PER_ADDRESS,
    help: "Payments one client address may try on the hosted Payment Page per minute (0: no limit)",
    default: "10",
    check: |value| check_number_up_to(value, 1_000_000),
});

register!(Setting {
    name: PER_LINK,
    help: "Payments customers may try through one payment link per minute (0: no limit)",
    default: "60",
    check: |value| check_number_up_to(value, 1_000_000),
});

register!(Service {
    name: "hosted page limits",
    start: |settings, extensions| {
        let rate = |name: &str| settings.setting(name).parse::<u32>().unwrap_or(0);
        extensions.insert(std::sync::Arc::new(hosted::PayThrottle::new(rate(PER_ADDRESS), rate(PER_LINK))));
        Ok(())
    },
});

register!(Job {
    name: "hosted page limits clean-up",
    every: std::time::Duration::from_secs(60),
    run: |state| {
        Box::pin(async move {
            state.extension::<std::sync::Arc<hosted::PayThrottle>>()?.forget_recovered();
            Ok(())
        })
    },
});

// The demo company's first project pays on a published style of its own.
register!(DemoData {
    name: "payment page style",
    order: 50,
    add: |db, demo| {
        Box::pin(async move {
            let Some(&project) = demo.project_ids.first() else { return Ok(0) };
            dashboard_payments_domain::page_styles::add_demo(&db, demo.company_id, project).await
        })
    },
});
