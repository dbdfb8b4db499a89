//! Every page a merchant admin reaches, found by following the links of the demo company
//! from the overview: axe-core in both themes, and the document's width on a phone.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use dashboard_core::BuiltinRole;
use dashboard_core::directory;
use dashboard_tests::TestApp;
use dashboard_tests::axe::{self, Violation};
use dashboard_tests::browser::Browser;
use fantoccini::Locator;
use url::Url;

use crate::browser::{click, demo_app, fill};

/// Enough for every section's pages; a crawl that finds more has found a link trap.
const MOST_PAGES: usize = 150;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_passes_axe_core_in_the_light_theme() {
    pages_pass_axe_core("default").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_passes_axe_core_in_the_dark_theme() {
    pages_pass_axe_core("dark").await;
}

async fn pages_pass_axe_core(theme: &str) {
    let Some(script) = axe::script() else { return };
    let Some(browser) = Browser::start().await else { return };
    let mut failures: BTreeMap<String, Vec<Violation>> = BTreeMap::new();
    let visited = visit_every_page(&browser, theme, async |page: &str| {
        let serious: Vec<Violation> =
            axe::audit(&browser, &script).await.into_iter().filter(Violation::is_serious).collect();
        if !serious.is_empty() {
            failures.insert(page.to_owned(), serious);
        }
        // For people to look at: target/screenshots/<theme>-<page>.png.
        browser.screenshot(&format!("{theme}{}", screenshot_name(page))).await;
    })
    .await;
    browser.close().await;
    assert!(visited.len() >= 25, "the crawl reached only {visited:?}");
    assert!(failures.is_empty(), "serious or critical axe-core violations ({theme} theme): {failures:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_page_is_wider_than_a_phone() {
    let Some(browser) = Browser::start().await else { return };
    browser.client.set_window_size(390, 844).await.unwrap();
    let mut too_wide = Vec::new();
    let visited = visit_every_page(&browser, "default", async |page: &str| {
        let overflow = browser.client.execute(WIDER_THAN_THE_WINDOW, vec![]).await.unwrap();
        if let Some(culprits) = overflow.as_str() {
            too_wide.push(format!("{page}: {culprits}"));
        }
        // For people to look at: target/screenshots/phone-<page>.png.
        browser.screenshot(&format!("phone{}", screenshot_name(page))).await;
    })
    .await;
    browser.close().await;
    assert!(visited.len() >= 25, "the crawl reached only {visited:?}");
    assert!(too_wide.is_empty(), "pages wider than a 390 px phone: {too_wide:#?}");
}

/// A page's screenshot file name: its shape, with dashes for what is not a letter or digit.
fn screenshot_name(page: &str) -> String {
    shape(page).trim_end_matches('/').chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect()
}

/// `null` when the document fits the window's width; otherwise the widths and the elements
/// that stick out furthest (outside any box that scrolls sideways on purpose).
const WIDER_THAN_THE_WINDOW: &str = r#"
    const root = document.documentElement;
    if (root.scrollWidth <= root.clientWidth) return null;
    const scrolls = (e) => {
        for (let box = e.parentElement; box && box !== document.body; box = box.parentElement) {
            if (["auto", "scroll"].includes(getComputedStyle(box).overflowX)) return true;
        }
        return false;
    };
    const culprits = [...document.body.querySelectorAll("*")]
        .filter((e) => e.getBoundingClientRect().right > root.clientWidth + 0.5 && !scrolls(e))
        .sort((a, b) => b.getBoundingClientRect().right - a.getBoundingClientRect().right)
        .slice(0, 4)
        .map((e) => `${e.tagName.toLowerCase()}.${[...e.classList].join(".")} (${Math.round(e.getBoundingClientRect().right)} px)`);
    return `${root.scrollWidth} px in ${root.clientWidth} px: ${culprits.join(", ")}`;
"#;

/// The demo company on a server in `theme`, and a merchant admin with the second factor,
/// so that every page of every section is open: calls `check` on the two sign-in pages on
/// the way in, then on every page [`crawl`] finds. Returns the pages checked.
async fn visit_every_page(browser: &Browser, theme: &str, mut check: impl AsyncFnMut(&str)) -> Vec<String> {
    let app = demo_app(theme).await;
    let company = directory::find_company_by_name(&app.state.db, dashboard::demo::COMPANY).await.unwrap().unwrap();
    let phone = "+447700900099";
    let admin = app.user_with_phone(company.id, "auditor", BuiltinRole::MerchantAdmin, Some(phone)).await;
    let authenticator = app.enable_second_factor(admin, phone).await;
    logged_callback(&app, company.id).await;
    open_chargeback(&app, company.id).await;
    styled_link(&app, company.id).await;

    browser.client.goto(&app.url("/forgot-password")).await.unwrap();
    check("/forgot-password").await;
    // The sign-in page as the owner of an account locked by wrong passwords sees it.
    app.user(company.id, "locked", BuiltinRole::Support).await;
    for _ in 0..6 {
        browser.client.goto(&app.url("/sign-in")).await.unwrap();
        fill(browser, "username", "locked").await;
        fill(browser, "password", "not the password").await;
        click(browser, "button[type=submit]").await;
    }
    let told = browser.client.find(Locator::Css(".alert-error")).await.unwrap().text().await.unwrap();
    assert!(told.starts_with("This account is locked"), "{told}");
    check("/sign-in/locked").await;
    browser.client.goto(&app.url("/sign-in")).await.unwrap();
    check("/sign-in").await;
    fill(browser, "username", "auditor").await;
    fill(browser, "password", dashboard_tests::PASSWORD).await;
    click(browser, "button[type=submit]").await;
    assert_eq!(browser.wait_for_text("h1", "Two-factor authentication").await, "Two-factor authentication");
    check("/sign-in/second-factor").await;
    fill(browser, "code", &authenticator.code()).await;
    click(browser, "button[type=submit]").await;
    browser.wait_for_text(".page-head h1", "Welcome, auditor tester").await;

    let mut visited =
        ["/forgot-password", "/sign-in/locked", "/sign-in", "/sign-in/second-factor"].map(str::to_owned).to_vec();
    visited.extend(crawl(browser, &app, check).await);
    visited
}

/// A callback on the demo company's first project with a failed attempt in its log, so that
/// the Projects page shows a callback's actions and log as a merchant sees them.
async fn logged_callback(app: &TestApp, company: i64) {
    use dashboard_payments_domain::schema::{callback_attempts, callback_endpoints};
    use dashboard_tests::query;
    let project = directory::company_projects(&app.state.db, company).await.unwrap()[0].id;
    let now = dashboard_core::time::now();
    let url = "https://shop.example.com/callbacks";
    let endpoint: i64 = query!(app, conn => diesel::insert_into(callback_endpoints::table)
        .values((
            callback_endpoints::project_id.eq(project),
            callback_endpoints::event.eq("payment.completed"),
            callback_endpoints::url.eq(url),
            callback_endpoints::enabled.eq(false),
            callback_endpoints::updated_at.eq(now),
        ))
        .returning(callback_endpoints::id)
        .get_result(conn)
        .await);
    query!(app, conn => diesel::insert_into(callback_attempts::table)
        .values((
            callback_attempts::endpoint_id.eq(endpoint),
            callback_attempts::attempted_at.eq(now),
            callback_attempts::url.eq(url),
            callback_attempts::status_code.eq(Some(503)),
            callback_attempts::latency_ms.eq(212),
            callback_attempts::error.eq(Some("The receiver answered 503 Service Unavailable.")),
            callback_attempts::response_excerpt.eq(Some("upstream connect error")),
        ))
        .execute(conn)
        .await);
}

/// A chargeback that needs an answer, so that the crawl reaches a case's page with its
/// forms (the demo history's own may all be closed).
async fn open_chargeback(app: &TestApp, company: i64) {
    use dashboard_payments_domain::schema::payments;
    use dashboard_tests::query;
    let payment: String = query!(app, conn => payments::table
        .filter(payments::company_id.eq(company))
        .filter(payments::status.eq("completed"))
        .select(payments::public_id)
        .first(conn)
        .await);
    dashboard_payments_domain::service::record_chargeback(
        &app.state.db,
        &payment,
        None,
        "13.1",
        "Merchandise not received",
    )
    .await
    .unwrap();
}

/// A published Payment Page style with a logo, and a payment link, so that the crawl
/// reaches the designer's editor, a link's page and the hosted page customers pay on.
async fn styled_link(app: &TestApp, company: i64) {
    let designer = app.another_browser();
    designer.sign_in_with_second_factor(company, "designer", BuiltinRole::MerchantAdmin).await;
    let project = directory::company_projects(&app.state.db, company).await.unwrap()[0].id;
    let post = |path: &str, body: serde_json::Value| designer.client.post(designer.url(path)).json(&body).send();
    let style: serde_json::Value =
        post("/api/v1/payment-page/styles", serde_json::json!({ "project_id": project, "name": "Autumn" }))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let published = post(&format!("/api/v1/payment-page/styles/{}/publication", style["id"]), serde_json::json!({}));
    assert!(published.await.unwrap().status().is_success());
    let link = serde_json::json!({
        "project_id": project, "currency": "EUR", "amount": 4_990, "description": "Two concert tickets",
    });
    assert!(post("/api/v1/payment-links", link).await.unwrap().status().is_success());
}

/// Visits the overview and then every page linked from a page visited, one page per shape
/// of path (`/payments/17` and `/payments/18` are one page), and calls `check` on each.
/// Returns the pages visited.
async fn crawl(browser: &Browser, app: &TestApp, mut check: impl AsyncFnMut(&str)) -> Vec<String> {
    let origin = Url::parse(&app.url("/")).unwrap();
    let mut shapes = BTreeSet::new();
    let mut queue = VecDeque::from([origin.clone()]);
    let mut visited = Vec::new();
    while let Some(page) = queue.pop_front() {
        if !shapes.insert(shape(page.path())) {
            continue;
        }
        assert!(visited.len() < MOST_PAGES, "more than {MOST_PAGES} pages: {visited:#?}");
        browser.client.goto(page.as_str()).await.unwrap();
        let landed = browser.client.current_url().await.unwrap();
        assert!(!landed.path().starts_with("/sign-in"), "{page} sent the admin to {landed}");
        let shown = page[url::Position::BeforePath..].to_owned();
        check(&shown).await;
        visited.push(shown);
        let links = browser
            .client
            .execute("return [...document.querySelectorAll('a[href]')].map((a) => a.href)", vec![])
            .await
            .unwrap();
        for link in links.as_array().unwrap().iter().filter_map(|link| link.as_str()) {
            if let Ok(mut link) = Url::parse(link)
                && link.origin() == origin.origin()
                && is_page(link.path())
            {
                link.set_fragment(None);
                queue.push_back(link);
            }
        }
    }
    eprintln!("{} pages visited: {}", visited.len(), visited.join(" "));
    visited
}

/// Files (a name with an extension: CSV, SVG, XLSX), downloads, the API (but its reference)
/// and signing out are not pages.
fn is_page(path: &str) -> bool {
    const NOT_PAGES: [&str; 4] = ["/api/v1", "/static/", "/sign-out", "/metrics"];
    let file = path.rsplit('/').next().is_some_and(|name| name.contains('.'));
    !file && !path.contains("download") && !NOT_PAGES.iter().any(|prefix| path.starts_with(prefix))
}

/// A path with its ids (numbers, or long segments with digits such as `pay_7f3a…`)
/// replaced by `{id}`.
fn shape(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            let digits = segment.chars().filter(char::is_ascii_digit).count();
            let id = digits > 0 && (digits == segment.len() || segment.len() >= 12);
            if id { "{id}" } else { segment }
        })
        .collect::<Vec<_>>()
        .join("/")
}
