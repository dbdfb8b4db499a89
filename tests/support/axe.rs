//! axe-core, the accessibility engine the independent checks use, run inside the real
//! browser on a page the browser shows.
//!
//! The script comes from npm (`npm pack axe-core@VERSION`, unpacked under
//! `target/axe-core/`) the first time it is needed. Locally the audit is skipped, loudly,
//! when npm cannot provide it; under `CI=true` that fails the run (`.ci/run` installs npm).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::browser::Browser;

/// Pinned, so that a new release's rules cannot fail a run nothing else changed.
const VERSION: &str = "4.10.3";

/// What axe-core reports of one rule a page breaks.
#[derive(Debug, Deserialize)]
pub struct Violation {
    pub id: String,
    pub impact: Option<String>,
    pub help: String,
    /// CSS selectors of the offending elements (a few).
    pub targets: Vec<String>,
}

impl Violation {
    /// Serious and critical violations fail a page; moderate and minor ones are advice.
    pub fn is_serious(&self) -> bool {
        matches!(self.impact.as_deref(), Some("serious" | "critical"))
    }
}

/// The axe-core source, fetched once per checkout; `None` (outside CI) when npm is missing.
/// Tests running side by side share one fetch: the first caller unpacks, the others wait.
pub fn script() -> Option<String> {
    static SCRIPT: OnceLock<Option<String>> = OnceLock::new();
    SCRIPT.get_or_init(fetch).clone()
}

fn fetch() -> Option<String> {
    let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/axe-core").join(VERSION);
    let file = folder.join("package/axe.min.js");
    if !file.is_file()
        && let Err(reason) = unpack(&folder)
    {
        assert!(std::env::var("CI").is_err(), "CI must run the accessibility audit: {reason}");
        eprintln!("skipped the accessibility audit: {reason}");
        return None;
    }
    Some(std::fs::read_to_string(&file).expect("axe.min.js is readable"))
}

/// `npm pack` writes the package's tarball into a folder of this process's own, `tar` unpacks
/// it there, and a rename puts the whole package in place at once: another test binary
/// unpacking at the same time can never read a half-written package.
fn unpack(folder: &Path) -> Result<(), String> {
    let scratch = folder.with_file_name(format!("{VERSION}.unpacking-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|e| format!("cannot create {}: {e}", scratch.display()))?;
    let packed = Command::new("npm")
        .args(["pack", &format!("axe-core@{VERSION}"), "--silent", "--pack-destination"])
        .arg(&scratch)
        .output()
        .map_err(|e| format!("npm is needed to fetch axe-core ({e}); apt-get install npm"))?;
    if !packed.status.success() {
        return Err(format!("npm pack axe-core failed: {}", String::from_utf8_lossy(&packed.stderr)));
    }
    let tarball = scratch.join(format!("axe-core-{VERSION}.tgz"));
    let status = Command::new("tar")
        .arg("xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(&scratch)
        .status()
        .map_err(|e| format!("tar is needed to unpack axe-core: {e}"))?;
    if !status.success() {
        return Err(format!("cannot unpack {}", tarball.display()));
    }
    let moved = std::fs::rename(&scratch, folder);
    if folder.join("package/axe.min.js").is_file() {
        // Either this rename or another process's won; both packages are the same.
        let _ = std::fs::remove_dir_all(&scratch);
        return Ok(());
    }
    moved.map_err(|e| format!("cannot move axe-core into {}: {e}", folder.display()))
}

/// Runs axe-core on the page the browser shows and returns every violation. WebDriver's
/// scripts are not subject to the page's Content-Security-Policy, so the page keeps its own.
pub async fn audit(browser: &Browser, script: &str) -> Vec<Violation> {
    browser.client.execute(script, vec![]).await.expect("axe-core loads");
    let run = r#"
        const done = arguments[arguments.length - 1];
        axe.run(document, { resultTypes: ["violations"] }).then(
            (results) => done(results.violations.map((v) => ({
                id: v.id,
                impact: v.impact,
                help: v.help,
                targets: v.nodes.slice(0, 5).map((n) => n.target.join(" ")),
            }))),
            (error) => done({ error: String(error) }),
        );
    "#;
    let found = browser.client.execute_async(run, vec![]).await.expect("axe-core runs");
    serde_json::from_value(found.clone()).unwrap_or_else(|_| panic!("axe-core failed: {found}"))
}
