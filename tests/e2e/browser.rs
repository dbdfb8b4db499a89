//! In a real browser: the demo's sign-in as the README describes it, with screenshots
//! in `target/screenshots/` to look at.

use dashboard_tests::browser::Browser;
use dashboard_tests::{Backend, TestApp, TestOptions};
use fantoccini::Locator;

async fn sign_in_as_demo_admin(app: &TestApp, browser: &Browser, screenshot_prefix: &str) {
    browser.client.goto(&app.url("/")).await.unwrap();
    // Signed out: the dashboard sends the browser to the sign-in page.
    assert_eq!(browser.wait_for_text("h1", "Sign in").await, "Sign in");
    assert!(browser.client.title().await.unwrap().starts_with("Sign in"));
    browser.screenshot(&format!("{screenshot_prefix}sign-in")).await;

    browser.client.find(Locator::Id("username")).await.unwrap().send_keys("admin").await.unwrap();
    browser.client.find(Locator::Id("password")).await.unwrap().send_keys(dashboard::demo::PASSWORD).await.unwrap();
    browser.client.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();

    assert_eq!(browser.wait_for_text(".page-head h1", "Welcome, Alex Morgan").await, "Welcome, Alex Morgan");
    let nav = browser.client.find(Locator::Css(".nav")).await.unwrap().text().await.unwrap();
    assert!(nav.contains("Overview") && nav.contains("Example"), "{nav}");
    browser.screenshot(&format!("{screenshot_prefix}overview")).await;
}

/// The README's flow: the demo company, the sign-in page, the overview. Cookies are
/// `Secure` here, as by default: browsers accept them on http://127.0.0.1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demo_user_signs_in_in_a_real_browser() {
    let Some(browser) = Browser::start().await else { return };
    let options = TestOptions { plain_http: false, ..TestOptions::default() };
    let app = TestApp::spawn_with(Backend::Sqlite, options).await.unwrap();
    dashboard::demo::ensure(&app.state.db).await.unwrap();

    sign_in_as_demo_admin(&app, &browser, "").await;

    browser.client.find(Locator::LinkText("Example")).await.unwrap().click().await.unwrap();
    assert_eq!(browser.wait_for_text(".card h2", "Hello, Alex Morgan!").await, "Hello, Alex Morgan!");
    browser.screenshot("example").await;

    // Sign out through the account menu.
    browser.client.find(Locator::Css(".user-menu summary")).await.unwrap().click().await.unwrap();
    browser.client.find(Locator::Css(".menu button")).await.unwrap().click().await.unwrap();
    assert_eq!(browser.wait_for_text("h1", "Sign in").await, "Sign in");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dark_theme_renders_in_a_real_browser() {
    let Some(browser) = Browser::start().await else { return };
    let options = TestOptions { theme: "dark".to_owned(), plain_http: false, ..TestOptions::default() };
    let app = TestApp::spawn_with(Backend::Sqlite, options).await.unwrap();
    dashboard::demo::ensure(&app.state.db).await.unwrap();
    sign_in_as_demo_admin(&app, &browser, "dark-").await;
    let background =
        browser.client.execute("return getComputedStyle(document.body).backgroundColor", vec![]).await.unwrap();
    assert_eq!(background, "rgb(15, 19, 32)", "the dark theme's background");
    browser.close().await;
}
