//! A binary whose registry is broken on purpose: a section that routes a page already
//! routed by the example section and has an API operation without a declared
//! permission. The application must refuse to start and say why.
#![allow(clippy::unwrap_used)]

use dashboard::server::Application;
use dashboard_core::registry::{Access, Api, Section};
use dashboard_core::{page, register_section};
use dashboard_tests::{Backend, TestOptions, fresh_database, fresh_dir, test_config};
use poem::handler;
use poem_openapi::OpenApi;
use poem_openapi::payload::PlainText;

#[handler]
fn clash() -> &'static str {
    "clash"
}

#[derive(Default)]
struct BrokenApi;

#[OpenApi]
impl BrokenApi {
    /// An operation nobody declared a permission for.
    #[oai(path = "/broken/secret", method = "get")]
    async fn secret(&self) -> PlainText<&'static str> {
        PlainText("secret")
    }
}

register_section!(Section {
    id: "broken",
    title: "Broken",
    nav: None,
    permissions: &[],
    pages: &[page!(GET "/example" => clash, Access::SignedIn)],
    api: Some(Api::of::<BrokenApi>(&[])),
    templates: &[],
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_registry_refuses_to_start_and_names_every_problem() {
    let database = fresh_database(Backend::Sqlite).await.unwrap();
    let config = test_config(database, &fresh_dir(), &TestOptions::default());
    let error = Application::build(&config).await.err().expect("a broken registry must not start");
    let message = error.to_string();
    assert!(message.contains("the dashboard will not start"), "{message}");
    assert!(
        message.contains("page GET /example: this method and path are already routed by section \"broken\""),
        "{message}"
    );
    assert!(message.contains("API operation GET /api/v1/broken/secret declares no permission"), "{message}");
}
