//! Themes: the dark theme by configuration, a theme folder overriding files, and a
//! refusal to start with an unknown theme.

use dashboard::server::Application;
use dashboard_core::BuiltinRole;
use dashboard_tests::{Backend, TestApp, TestOptions, fresh_database, fresh_dir, test_config};

/// The stylesheet `name` as linked from the sign-in page (seen signed out).
async fn stylesheet(app: &TestApp, name: &str) -> String {
    let signed_out = app.another_client();
    let html = signed_out.get(app.url("/sign-in")).send().await.unwrap().text().await.unwrap();
    let marker = format!("/static/{name}?v=");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no {name} link"));
    let href = &html[start..start + html[start..].find('"').unwrap()];
    app.get_text(href).await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dark_theme_is_selected_by_configuration() {
    let light = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let dark = TestApp::spawn_with(Backend::Sqlite, TestOptions { theme: "dark".to_owned(), ..TestOptions::default() })
        .await
        .unwrap();
    let light_css = stylesheet(&light, "theme.css").await;
    let dark_css = stylesheet(&dark, "theme.css").await;
    assert!(light_css.contains("color-scheme: light"));
    assert!(dark_css.contains("color-scheme: dark"));
    assert_eq!(stylesheet(&light, "app.css").await, stylesheet(&dark, "app.css").await, "dark falls back on default");
    assert!(dark.get_text("/sign-in").await.1.contains("data-theme=\"dark\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_theme_folder_overrides_a_section_template_and_a_stylesheet() {
    let folder = std::env::temp_dir().join(format!("dashboard-theme-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(folder.join("templates/example")).unwrap();
    std::fs::create_dir_all(folder.join("static")).unwrap();
    std::fs::write(folder.join("templates/example/index.hbs"), "<h1>Branded example for {{greeting.company}}</h1>")
        .unwrap();
    std::fs::write(folder.join("static/theme.css"), ":root { --primary: #ff6600; }").unwrap();

    let options = TestOptions { theme_dir: Some(folder.clone()), ..TestOptions::default() };
    let app = TestApp::spawn_with(Backend::Sqlite, options).await.unwrap();
    let (company, _) = app.company("Acme", &[]).await;
    // Only the merchant admin may open the example section.
    app.sign_in_with_second_factor(company, "ada", BuiltinRole::MerchantAdmin).await;
    assert!(app.get_text("/example").await.1.contains("<h1>Branded example for Acme</h1>"));
    assert!(stylesheet(&app, "theme.css").await.contains("#ff6600"));
    std::fs::remove_dir_all(folder).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_theme_is_refused_at_start_up() {
    let database = fresh_database(Backend::Sqlite).await.unwrap();
    let options = TestOptions { theme: "neon".to_owned(), ..TestOptions::default() };
    let error = Application::build(&test_config(database, &fresh_dir(), &options)).await.err().expect("must not start");
    let message = error.to_string();
    assert!(message.contains("unknown theme \"neon\"") && message.contains("dark"), "{message}");
}
