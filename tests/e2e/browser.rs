//! In a real browser: the README's demo sign-in and the first-time set-up of the second
//! factor as the seed describes it, with screenshots in `target/screenshots/`.

use dashboard_tests::browser::Browser;
use dashboard_tests::{Authenticator, Backend, TestApp, TestOptions};
use fantoccini::Locator;

const WELCOME: &str = "Welcome, Alex Morgan";

pub(crate) async fn fill(browser: &Browser, id: &str, text: &str) {
    browser.client.find(Locator::Id(id)).await.unwrap().send_keys(text).await.unwrap();
}

pub(crate) async fn click(browser: &Browser, css: &str) {
    browser.client.find(Locator::Css(css)).await.unwrap().click().await.unwrap();
}

pub(crate) async fn text_of(browser: &Browser, css: &str) -> String {
    browser.client.find(Locator::Css(css)).await.unwrap().text().await.unwrap()
}

/// Signs `username` in through the pages with the test password and a code of their
/// authenticator, and waits until the browser has left the sign-in pages.
pub(crate) async fn sign_in_with_code(browser: &Browser, app: &TestApp, username: &str, authenticator: &Authenticator) {
    browser.client.goto(&app.url("/sign-in")).await.unwrap();
    fill(browser, "username", username).await;
    fill(browser, "password", dashboard_tests::PASSWORD).await;
    click(browser, "button[type=submit]").await;
    browser.wait_for_text("h1", "Two-factor authentication").await;
    fill(browser, "code", &authenticator.code()).await;
    click(browser, "button[type=submit]").await;
    for _ in 0..100 {
        if !browser.client.current_url().await.unwrap().path().starts_with("/sign-in") {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Sets a form control's value as a person's typing would, with its events.
pub(crate) async fn set_value(browser: &Browser, id: &str, value: &str) {
    let script = "const e = document.getElementById(arguments[0]); e.value = arguments[1]; \
                  e.dispatchEvent(new Event('input', { bubbles: true })); e.dispatchEvent(new Event('change', { bubbles: true }));";
    browser.client.execute(script, vec![serde_json::json!(id), serde_json::json!(value)]).await.unwrap();
}

/// Fails on any serious or critical axe-core violation of the page shown.
pub(crate) async fn serious_violations(browser: &Browser, script: &str, page: &str) {
    let serious: Vec<_> = dashboard_tests::axe::audit(browser, script)
        .await
        .into_iter()
        .filter(dashboard_tests::axe::Violation::is_serious)
        .collect();
    assert!(serious.is_empty(), "serious or critical axe-core violations on {page}: {serious:#?}");
}

/// Waits (up to 10 s) until the browser's address is one `wanted` accepts; that address.
pub(crate) async fn wait_for_path(browser: &Browser, wanted: impl Fn(&url::Url) -> bool) -> url::Url {
    let mut last = browser.client.current_url().await.unwrap();
    for _ in 0..100 {
        last = browser.client.current_url().await.unwrap();
        if wanted(&last) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    last
}

/// Opens the dashboard signed out and signs in as the demo admin with the password.
async fn sign_in_as_demo_admin(app: &TestApp, browser: &Browser, screenshot: Option<&str>) {
    browser.client.goto(&app.url("/")).await.unwrap();
    // Signed out: the dashboard sends the browser to the sign-in page.
    assert_eq!(browser.wait_for_text("h1", "Sign in").await, "Sign in");
    assert!(browser.client.title().await.unwrap().starts_with("Sign in"));
    if let Some(name) = screenshot {
        browser.screenshot(name).await;
    }
    fill(browser, "username", "admin").await;
    fill(browser, "password", dashboard::demo::PASSWORD).await;
    click(browser, "button[type=submit]").await;
}

/// Demo company on an application with the default, secure cookies: browsers accept
/// `Secure` cookies on http://127.0.0.1, as the README's first command relies on.
pub(crate) async fn demo_app(theme: &str) -> TestApp {
    let options = TestOptions { plain_http: false, theme: theme.to_owned(), ..TestOptions::default() };
    let app = TestApp::spawn_with(Backend::Sqlite, options).await.unwrap();
    dashboard::demo::ensure(&app.state.db, 300).await.unwrap();
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_admin_sets_up_the_second_factor_in_a_real_browser() {
    let Some(browser) = Browser::start().await else { return };
    let app = demo_app("default").await;
    let phone = dashboard::demo::USERS[0].3;

    sign_in_as_demo_admin(&app, &browser, Some("sign-in")).await;
    assert_eq!(browser.wait_for_text(".page-head h1", WELCOME).await, WELCOME);
    let nav = text_of(&browser, ".nav").await;
    assert!(!nav.contains("Example"), "no second factor yet, so no Example: {nav}");
    assert!(text_of(&browser, ".banner").await.contains("need two-factor authentication"));
    browser.screenshot("overview-second-factor-banner").await;

    // The seed's first-time set-up: SMS activation code, then the authenticator app.
    browser.client.find(Locator::LinkText("Set up two-factor authentication")).await.unwrap().click().await.unwrap();
    assert_eq!(browser.wait_for_text(".page-head h1", "My profile").await, "My profile");
    click(&browser, "form[action='/profile/second-factor/sms'] button").await;
    browser.wait_for_text(".alert-info", "We sent a 6-digit code to your phone. It is valid for 5 minutes.").await;
    fill(&browser, "sms-code", &app.last_sms_code(phone)).await;
    click(&browser, "form[action='/profile/second-factor/activate'] button").await;
    let secret = loop_until_present(&browser, "[data-secret]").await;
    browser.screenshot("profile-enrolment").await;
    let authenticator = Authenticator::new(&secret);
    fill(&browser, "app-code", &authenticator.code()).await;
    click(&browser, "form[action='/profile/second-factor/enable'] button").await;
    let heading = "Two-factor authentication is on";
    assert_eq!(browser.wait_for_text(".page-head h1", heading).await, heading);
    let codes = browser.client.find_all(Locator::Css("[data-recovery-codes] li")).await.unwrap();
    assert_eq!(codes.len(), 10);
    browser.screenshot("recovery-codes").await;

    // The renewed session carries every permission: the home page is the analytics.
    browser.client.find(Locator::LinkText("I saved them, continue")).await.unwrap().click().await.unwrap();
    assert_eq!(browser.wait_for_text(".page-head h1", "Analytics").await, "Analytics");
    let kpis = text_of(&browser, ".kpis").await;
    assert!(kpis.contains("Turnover") && kpis.contains("Approval rate"), "{kpis}");
    browser.screenshot("analytics-overview").await;
    browser.client.execute("document.querySelector('.chart-grid').scrollIntoView()", vec![]).await.unwrap();
    browser.screenshot("analytics-charts").await;
    browser.client.execute("document.querySelector('.boards').scrollIntoView()", vec![]).await.unwrap();
    browser.screenshot("analytics-charts-more").await;
    browser.client.goto(&app.url("/analytics/charts/by_country?period=30d")).await.unwrap();
    let heading = "Turnover by country (EUR)";
    assert_eq!(browser.wait_for_text(".page-head h1", heading).await, heading);
    browser.screenshot("analytics-chart").await;
    browser.client.find(Locator::LinkText("Example")).await.unwrap().click().await.unwrap();
    assert_eq!(browser.wait_for_text(".card h2", "Hello, Alex Morgan!").await, "Hello, Alex Morgan!");
    browser.screenshot("example").await;

    // My team, for the merchant admin.
    for (path, heading, name) in [
        ("/team", "My team", "team-users"),
        ("/team/users/new", "My team", "team-new-user"),
        ("/team/roles", "My team", "team-roles"),
        ("/profile", "My profile", "profile"),
        ("/step-up?next=/team", "Confirm it is you", "step-up"),
        ("/projects", "Projects", "projects"),
        ("/manual", "Manual payments", "manual-payments"),
        ("/manual/purchase", "Take a card payment", "manual-purchase"),
        ("/manual/actions", "Refund, capture or release", "manual-actions"),
        ("/manual/operations", "Manual operations", "manual-operations"),
        ("/finance", "Finance", "finance"),
        ("/finance/statement", "Statement", "finance-statement"),
        ("/team/audit", "My team", "team-audit"),
    ] {
        browser.client.goto(&app.url(path)).await.unwrap();
        assert_eq!(browser.wait_for_text(".page-head h1", heading).await, heading, "{path}");
        browser.screenshot(name).await;
    }
    let audit = text_of(&browser, "table").await;
    assert!(audit.contains("Second factor enabled"), "{audit}");

    // Payments: the registry of the demo history, a filter, and a payment's detail.
    browser.client.goto(&app.url("/payments?currency=EUR&status=completed")).await.unwrap();
    assert_eq!(browser.wait_for_text(".page-head h1", "Payments").await, "Payments");
    let rows = browser.client.find_all(Locator::Css("tbody tr")).await.unwrap();
    assert!(!rows.is_empty(), "the demo history has completed EUR payments");
    assert!(text_of(&browser, "tbody").await.contains("Completed"));
    browser.screenshot("payments").await;
    click(&browser, "tbody tr a").await;
    browser.wait_for_text("section.card h2", "Refund").await;
    browser.screenshot("payment-detail").await;

    // Sign out; the next sign-in asks for the app's code.
    click(&browser, ".user-menu summary").await;
    click(&browser, ".menu button").await;
    sign_in_as_demo_admin(&app, &browser, None).await;
    let heading = "Two-factor authentication";
    assert_eq!(browser.wait_for_text("h1", heading).await, heading);
    browser.screenshot("sign-in-second-factor").await;
    fill(&browser, "code", &authenticator.code()).await;
    click(&browser, "button[type=submit]").await;
    assert_eq!(browser.wait_for_text(".page-head h1", "Analytics").await, "Analytics");
    assert!(text_of(&browser, ".nav").await.contains("Example"));
    browser.close().await;
}

/// Waits for an element and returns its text.
async fn loop_until_present(browser: &Browser, css: &str) -> String {
    wait_until(browser, css, |_| true).await
}

/// Waits for an element whose text satisfies `done` and returns that text. An element
/// found while the page was being replaced can go stale before its text is read: then
/// it is looked for again.
async fn wait_until(browser: &Browser, css: &str, done: impl Fn(&str) -> bool) -> String {
    for _ in 0..100 {
        if let Ok(element) = browser.client.find(Locator::Css(css)).await
            && let Ok(text) = element.text().await
            && done(&text)
        {
            return text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{css} never appeared as expected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dark_theme_renders_in_a_real_browser() {
    let Some(browser) = Browser::start().await else { return };
    let app = demo_app("dark").await;
    sign_in_as_demo_admin(&app, &browser, Some("dark-sign-in")).await;
    assert_eq!(browser.wait_for_text(".page-head h1", WELCOME).await, WELCOME);
    browser.screenshot("dark-overview").await;
    let background =
        browser.client.execute("return getComputedStyle(document.body).backgroundColor", vec![]).await.unwrap();
    assert_eq!(background, "rgb(15, 19, 32)", "the dark theme's background");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_columns_are_chosen_in_a_real_browser() {
    let Some(browser) = Browser::start().await else { return };
    let app = demo_app("default").await;
    sign_in_as_demo_admin(&app, &browser, None).await;
    assert_eq!(browser.wait_for_text(".page-head h1", WELCOME).await, WELCOME);
    browser.client.goto(&app.url("/payments?currency=EUR")).await.unwrap();
    assert_eq!(browser.wait_for_text(".page-head h1", "Payments").await, "Payments");
    // Headings are shown in capitals.
    let headings = text_of(&browser, "table thead").await.to_lowercase();
    assert!(headings.contains("customer") && !headings.contains("method"), "{headings}");

    click(&browser, ".column-menu summary").await;
    click(&browser, "input[name=columns][value=customer]").await;
    click(&browser, "input[name=columns][value=method]").await;
    browser.screenshot("payments-columns-menu").await;
    click(&browser, ".column-choices button[type=submit]").await;

    // The page comes back with the chosen columns (the old one may still be shown at first).
    let headings = wait_until(&browser, "table thead", |text| text.to_lowercase().contains("method")).await;
    assert!(!headings.to_lowercase().contains("customer"), "{headings}");
    assert!(browser.client.current_url().await.unwrap().as_str().ends_with("/payments?currency=EUR"));
    browser.screenshot("payments-registry").await;
    browser.close().await;
}

/// The window's frame around the page: [width, height] in pixels.
const FRAME: &str = "return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight]";

/// How many rows of the table show whole in the window.
const ROWS_IN_VIEW: &str = "return [...document.querySelectorAll('table.registry tbody tr')]\
    .filter((row) => row.getBoundingClientRect().bottom <= window.innerHeight).length";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_shows_fifteen_payments_above_the_fold() {
    let Some(browser) = Browser::start().await else { return };
    let app = demo_app("default").await;
    sign_in_as_demo_admin(&app, &browser, None).await;
    assert_eq!(browser.wait_for_text(".page-head h1", WELCOME).await, WELCOME);
    // A 1440 x 900 page: the window's frame comes on top.
    let frame = browser.client.execute(FRAME, vec![]).await.unwrap();
    let (width, height) = (frame[0].as_u64().unwrap() as u32, frame[1].as_u64().unwrap() as u32);
    browser.client.set_window_size(1440 + width, 900 + height).await.unwrap();
    browser.client.goto(&app.url("/payments")).await.unwrap();
    assert_eq!(browser.wait_for_text(".page-head h1", "Payments").await, "Payments");
    let rows = browser.client.execute(ROWS_IN_VIEW, vec![]).await.unwrap().as_i64().unwrap();
    browser.screenshot("payments-registry-desktop").await;
    assert!(rows >= 15, "{rows} payments above the fold at 1440 x 900");
    let sideways = "return document.querySelector('table.registry').getBoundingClientRect().right \
        <= document.querySelector('.registry-scroll').getBoundingClientRect().right + 0.5";
    assert_eq!(browser.client.execute(sideways, vec![]).await.unwrap(), true, "the columns fit 1440 px");

    // A filter in use shows as a chip that removes it.
    browser.client.goto(&app.url("/payments?status=declined&currency=EUR")).await.unwrap();
    let chips = text_of(&browser, ".chips").await;
    assert!(chips.contains("Status: Declined") && chips.contains("Currency: EUR"), "{chips}");
    browser.screenshot("payments-registry-filtered").await;
    click(&browser, ".filter-chip").await;
    let url = browser.client.current_url().await.unwrap();
    assert_eq!(url.query(), Some("currency=EUR"), "the chip took its filter away");

    // On a phone, payments are cards: no column headings, nothing wider than the screen.
    browser.client.set_window_size(390, 844).await.unwrap();
    browser.client.goto(&app.url("/payments")).await.unwrap();
    let headings = browser
        .client
        .execute("return getComputedStyle(document.querySelector('table.registry thead')).display", vec![])
        .await
        .unwrap();
    assert_eq!(headings, "none");
    browser.screenshot("payments-registry-phone").await;
    browser.close().await;
}
