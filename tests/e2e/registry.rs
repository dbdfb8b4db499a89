//! The registry as the running application shows it: the sections, one OpenAPI document.

use dashboard_tests::reqwest::StatusCode;
use dashboard_tests::{Backend, TestApp};
use serde_json::Value;

/// A crate of the workspace, as `cargo metadata` describes it.
struct WorkspaceCrate {
    name: String,
    /// Its folder, relative to the workspace root: `modules/payments`.
    folder: String,
    /// `[package.metadata.dashboard] kind = "domain"`: registers no section.
    domain: bool,
    /// The workspace crates it depends on (normal dependencies).
    uses: Vec<String>,
}

impl WorkspaceCrate {
    fn is_section(&self) -> bool {
        self.folder.starts_with("modules/") && !self.domain
    }
}

fn workspace_crates() -> Vec<WorkspaceCrate> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().canonicalize().unwrap();
    let output = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline", "--manifest-path"])
        .arg(root.join("Cargo.toml"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let metadata: Value = serde_json::from_slice(&output.stdout).unwrap();
    let packages = metadata["packages"].as_array().unwrap();
    let names: Vec<&str> = packages.iter().map(|p| p["name"].as_str().unwrap()).collect();
    packages
        .iter()
        .map(|package| {
            let manifest = std::path::Path::new(package["manifest_path"].as_str().unwrap());
            let folder = manifest.parent().unwrap().strip_prefix(&root).unwrap().display().to_string();
            let uses = package["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|dependency| dependency["kind"].is_null())
                .filter_map(|dependency| dependency["name"].as_str())
                .filter(|name| names.contains(name))
                .map(str::to_owned)
                .collect();
            WorkspaceCrate {
                name: package["name"].as_str().unwrap().to_owned(),
                folder,
                domain: package["metadata"]["dashboard"]["kind"] == "domain",
                uses,
            }
        })
        .collect()
}

/// Every section crate of the workspace is linked into the binary and registers its
/// section (a forgotten `use x as _;` in the app would drop it silently), and every
/// registered section comes from one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_section_crate_of_the_workspace_is_registered() {
    let sections: std::collections::BTreeSet<String> =
        workspace_crates().into_iter().filter(WorkspaceCrate::is_section).map(|c| c.name).collect();
    assert!(sections.contains("dashboard-payments") && sections.contains("dashboard-example"), "{sections:?}");
    let registered = dashboard_core::registry::SectionSource::all();
    let packages: std::collections::BTreeSet<String> = registered.values().map(|p| (*p).to_owned()).collect();
    assert_eq!(packages, sections, "registered sections by package: {registered:?}");
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let ids: Vec<&str> = registered.keys().copied().collect();
    assert_eq!(app.state.registry.section_ids(), ids, "the running application serves them all");
}

/// Sections build on the core and on domain crates, never on another section, so one
/// section can change without touching the others; the core names no section or domain.
#[test]
fn sections_depend_only_on_the_core_and_domain_crates() {
    let crates = workspace_crates();
    let kind = |name: &str| crates.iter().find(|c| c.name == name).map(|c| (c.is_section(), c.domain));
    let mut problems = Vec::new();
    for krate in &crates {
        for used in &krate.uses {
            let Some((used_is_section, used_is_domain)) = kind(used) else { continue };
            let allowed = match krate.folder.as_str() {
                "core" => false,
                folder if folder.starts_with("modules/") => used == "dashboard-core" || used_is_domain,
                // The app composes everything; the tests and the benchmark drive it.
                _ => true,
            };
            if !allowed {
                let what = if used_is_section { "section" } else { "crate" };
                problems.push(format!("{} ({}) depends on the {what} {used}", krate.name, krate.folder));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    let core = crates.iter().find(|c| c.name == "dashboard-core").unwrap();
    assert!(core.uses.is_empty(), "the core depends on {:?}", core.uses);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_openapi_document_holds_every_sections_operations() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let response = app.get("/api/openapi.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    let document: Value = response.json().await.unwrap();
    // For validators and client generators to read: target/openapi.json.
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/openapi.json");
    std::fs::write(&file, serde_json::to_string_pretty(&document).unwrap()).unwrap();
    validate_openapi(&file);
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(document["servers"][0]["url"], "/api/v1");
    // Times are declared as such, for generated clients to parse them.
    let payment = &document["components"]["schemas"]["PaymentView"]["properties"];
    assert_eq!(payment["created_at"]["format"], "date-time", "{payment}");
    // Every currency the document constrains is constrained to exactly the supported ones.
    let schemas = document["components"]["schemas"].as_object().unwrap();
    for taken in ["Money", "LinkRequest", "AcceptedMethod"] {
        assert!(schemas[taken]["properties"]["currency"]["pattern"].is_string(), "{taken} constrains its currency");
    }
    for (name, schema) in schemas {
        let Some(currency) = schema["properties"].get("currency").filter(|c| c.get("pattern").is_some()) else {
            continue;
        };
        assert_eq!(currency["pattern"], dashboard_core::money::currency_pattern(), "{name}: {currency}");
    }
    // A body of another type is a documented answer.
    assert!(document["paths"]["/payments"]["post"]["responses"]["415"].is_object());
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(
        (schemes["apiToken"]["scheme"].as_str(), schemes["session"]["in"].as_str()),
        (Some("bearer"), Some("cookie"))
    );
    let paths = document["paths"].as_object().unwrap();

    let mut sections_with_api = 0;
    for section in app.state.registry.sections() {
        let Some(api) = &section.api else { continue };
        sections_with_api += 1;
        for operation in api.operations {
            let documented = &paths[operation.path][operation.method.as_str().to_lowercase()];
            assert!(
                documented.is_object(),
                "{} {} of {} is not in the document",
                operation.method,
                operation.path,
                section.id
            );
            let description = documented["description"].as_str().unwrap_or_default();
            assert!(description.contains("Access:") || description.contains("Requires permission"), "{description}");
            // How to authenticate: nothing for public operations, a token or a session otherwise.
            let security = documented["security"].as_array().unwrap();
            let public = matches!(operation.access, dashboard_core::registry::Access::Public);
            assert_eq!(security.is_empty(), public, "{} {}: {security:?}", operation.method, operation.path);
        }
    }
    assert!(sections_with_api >= 2);
    let greeting = &paths["/example/greeting"]["get"];
    assert!(greeting["description"].as_str().unwrap().contains("Requires permission `example.view`"));
    assert!(greeting["responses"]["403"]["content"]["application/problem+json"].is_object());

    let (status, docs) = app.get_text("/api/docs").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        docs.contains("/example/greeting") && docs.contains("id=\"schema-problem\""),
        "the reference shows the document"
    );
    assert!(!docs.contains("<script"), "a page without scripts");
}

/// Validates the OpenAPI document in `file` with openapi-spec-validator, the validator
/// integrators' tools build on (Python). Locally it is skipped, loudly, when missing;
/// under `CI=true` it must run (`.ci/run` installs it).
fn validate_openapi(file: &std::path::Path) {
    const VALIDATE: &str = "import sys\n\
        from openapi_spec_validator import validate\n\
        from openapi_spec_validator.readers import read_from_filename\n\
        validate(read_from_filename(sys.argv[1])[0])";
    let ran = std::process::Command::new("python3").args(["-c", VALIDATE]).arg(file).output();
    match ran {
        Ok(output) if output.status.success() => {}
        Ok(output) if String::from_utf8_lossy(&output.stderr).contains("No module named 'openapi_spec_validator'") => {
            assert!(
                std::env::var("CI").is_err(),
                "CI must validate the OpenAPI document: pip install openapi-spec-validator"
            );
            eprintln!("skipped validating the OpenAPI document: openapi-spec-validator is not installed");
        }
        Ok(output) => panic!("the OpenAPI document is not valid:\n{}", String::from_utf8_lossy(&output.stderr)),
        Err(error) => {
            assert!(
                std::env::var("CI").is_err(),
                "CI must validate the OpenAPI document: python3 is missing ({error})"
            );
            eprintln!("skipped validating the OpenAPI document: {error}");
        }
    }
}
