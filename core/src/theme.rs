//! Themes: handlebars templates and static assets, layered.
//!
//! Lowest to highest: the sections' own templates, the embedded `default` theme, the
//! embedded theme chosen by configuration (e.g. `dark`), then an optional theme folder
//! on disk. A later layer overrides a file of the same name, so a theme folder holding
//! only `static/theme.css` restyles everything and one holding
//! `templates/example/index.hbs` replaces one section page. Templates are compiled into
//! the binary, so it runs from any folder.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use handlebars::{Context, Handlebars, Helper, HelperResult, Output, RenderContext, RenderErrorReason};
use rust_embed::RustEmbed;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::registry::Registry;

#[derive(RustEmbed)]
#[folder = "../themes/"]
struct EmbeddedThemes;

/// Name of the theme every other theme falls back on.
pub const BASE_THEME: &str = "default";

#[derive(Debug, thiserror::Error)]
pub enum ThemeError {
    #[error("unknown theme {name:?}: the embedded themes are {known}; or give a theme folder")]
    Unknown { name: String, known: String },
    #[error("cannot read the theme folder {path}: {reason}")]
    Folder { path: PathBuf, reason: String },
    #[error("template {name:?} does not compile: {reason}")]
    Template { name: String, reason: String },
    #[error("template {name:?} failed to render: {reason}")]
    Render { name: String, reason: String },
}

/// A static file of the theme, with the version used to bust caches.
pub struct Asset {
    pub bytes: Vec<u8>,
    pub content_type: &'static str,
    pub version: String,
}

/// The loaded theme: compiled templates and static assets.
pub struct Theme {
    name: String,
    handlebars: Handlebars<'static>,
    assets: HashMap<String, Asset>,
}

impl std::fmt::Debug for Theme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Theme").field("name", &self.name).finish_non_exhaustive()
    }
}

/// The embedded theme names.
pub fn embedded_themes() -> Vec<String> {
    let mut names: Vec<String> =
        EmbeddedThemes::iter().filter_map(|path| path.split('/').next().map(str::to_owned)).collect();
    names.sort();
    names.dedup();
    names
}

impl Theme {
    /// Loads theme `name` (embedded), layered over `default`, with an optional folder on top.
    pub fn load(name: &str, folder: Option<&Path>, registry: &Registry) -> Result<Theme, ThemeError> {
        let known = embedded_themes();
        if !known.iter().any(|known| known == name) && folder.is_none() {
            return Err(ThemeError::Unknown { name: name.to_owned(), known: known.join(", ") });
        }
        let mut templates: HashMap<String, String> = HashMap::new();
        let mut files: HashMap<String, Vec<u8>> = HashMap::new();
        for section in registry.sections() {
            for template in section.templates {
                templates.insert(template.name.to_owned(), template.source.to_owned());
            }
        }
        let mut layers = vec![BASE_THEME];
        if name != BASE_THEME {
            layers.push(name);
        }
        for layer in layers {
            for path in EmbeddedThemes::iter() {
                let Some(relative) = path.strip_prefix(layer).and_then(|p| p.strip_prefix('/')) else {
                    continue;
                };
                if let Some(file) = EmbeddedThemes::get(&path) {
                    add_file(relative, file.data.into_owned(), &mut templates, &mut files);
                }
            }
        }
        if let Some(folder) = folder {
            read_folder(folder, folder, &mut templates, &mut files)?;
        }

        let assets: HashMap<String, Asset> = files
            .into_iter()
            .map(|(path, bytes)| {
                let version = short_hash(&bytes);
                let content_type = content_type(&path);
                (path, Asset { bytes, content_type, version })
            })
            .collect();

        let mut handlebars = Handlebars::new();
        handlebars.set_strict_mode(true);
        handlebars.set_dev_mode(false);
        for (template_name, source) in &templates {
            handlebars
                .register_template_string(template_name, source)
                .map_err(|e| ThemeError::Template { name: template_name.clone(), reason: e.to_string() })?;
        }
        let versions: HashMap<String, String> =
            assets.iter().map(|(path, asset)| (path.clone(), asset.version.clone())).collect();
        handlebars.register_helper(
            "asset",
            Box::new(
                move |h: &Helper,
                      _: &Handlebars,
                      _: &Context,
                      _: &mut RenderContext,
                      out: &mut dyn Output|
                      -> HelperResult {
                    let path = h
                        .param(0)
                        .and_then(|p| p.value().as_str())
                        .ok_or(RenderErrorReason::ParamNotFoundForIndex("asset", 0))?;
                    let version = versions
                        .get(path)
                        .ok_or_else(|| RenderErrorReason::Other(format!("no static file {path:?} in the theme")))?;
                    out.write(&format!("/static/{path}?v={version}"))?;
                    Ok(())
                },
            ),
        );
        handlebars.register_helper("icon", Box::new(icon_helper));
        handlebars.register_helper("datetime", Box::new(datetime_helper));
        handlebars.register_helper("time", Box::new(time_helper));
        handlebars.register_helper("human", Box::new(human_helper));
        Ok(Theme { name: name.to_owned(), handlebars, assets })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Renders template `name` with `data`.
    pub fn render<T: Serialize>(&self, name: &str, data: &T) -> Result<String, ThemeError> {
        self.handlebars
            .render(name, data)
            .map_err(|e| ThemeError::Render { name: name.to_owned(), reason: e.to_string() })
    }

    pub fn asset(&self, path: &str) -> Option<&Asset> {
        self.assets.get(path)
    }
}

/// Sorts a theme file into templates (`templates/x/y.hbs` → `x/y`) or static assets
/// (`static/app.css` → `app.css`); anything else (a README) is ignored.
fn add_file(
    relative: &str,
    bytes: Vec<u8>,
    templates: &mut HashMap<String, String>,
    files: &mut HashMap<String, Vec<u8>>,
) {
    if let Some(name) = relative.strip_prefix("templates/").and_then(|p| p.strip_suffix(".hbs")) {
        templates.insert(name.to_owned(), String::from_utf8_lossy(&bytes).into_owned());
    } else if let Some(name) = relative.strip_prefix("static/") {
        files.insert(name.to_owned(), bytes);
    }
}

fn read_folder(
    root: &Path,
    dir: &Path,
    templates: &mut HashMap<String, String>,
    files: &mut HashMap<String, Vec<u8>>,
) -> Result<(), ThemeError> {
    let error = |reason: std::io::Error| ThemeError::Folder { path: dir.to_owned(), reason: reason.to_string() };
    for entry in std::fs::read_dir(dir).map_err(error)? {
        let path = entry.map_err(error)?.path();
        if path.is_dir() {
            read_folder(root, &path, templates, files)?;
        } else if let Ok(relative) = path.strip_prefix(root) {
            let relative = relative.to_string_lossy().replace('\\', "/");
            let bytes = std::fs::read(&path).map_err(error)?;
            add_file(&relative, bytes, templates, files);
        }
    }
    Ok(())
}

fn short_hash(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().take(6).map(|b| format!("{b:02x}")).collect()
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or_default() {
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "json" => "application/json",
        _ => "application/octet-stream",
    }
}

/// Navigation icons: 24×24 outline paths, drawn for this project.
pub const ICONS: &[(&str, &str)] = &[
    ("home", "M3 11l9-7 9 7M5 10v10h5v-6h4v6h5V10"),
    ("chart", "M4 20V4M4 20h16M8 16v-5M12 16V8M16 16v-3M20 16V6"),
    ("card", "M3 6h18v12H3zM3 10h18M7 15h4"),
    ("beaker", "M9 3h6M10 3v6l-5 9a2 2 0 0 0 2 3h10a2 2 0 0 0 2-3l-5-9V3M7.5 14h9"),
    ("users", "M9 11a4 4 0 1 0 0-8 4 4 0 0 0 0 8zM2 21a7 7 0 0 1 14 0M16 3.5a4 4 0 0 1 0 7.5M22 21a7 7 0 0 0-4-6.3"),
    ("user", "M12 12a4.5 4.5 0 1 0 0-9 4.5 4.5 0 0 0 0 9zM4 21a8 8 0 0 1 16 0"),
    ("shield", "M12 3l8 3v6c0 5-3.5 8-8 9-4.5-1-8-4-8-9V6zM9 12l2 2 4-4"),
    ("file", "M6 3h8l4 4v14H6zM14 3v4h4M9 12h6M9 16h6"),
    ("folder", "M3 6h6l2 2h10v11H3z"),
    (
        "settings",
        "M12 15a3 3 0 1 0 0-6 3 3 0 0 0 0 6zM12 2v3M12 19v3M2 12h3M19 12h3M4.9 4.9l2.1 2.1M17 17l2.1 2.1M4.9 19.1L7 17M17 7l2.1-2.1",
    ),
    ("repeat", "M17 2l3 3-3 3M4 11V9a4 4 0 0 1 4-4h12M7 22l-3-3 3-3M20 13v2a4 4 0 0 1-4 4H4"),
    ("send", "M22 2L11 13M22 2l-7 20-4-9-9-4z"),
    ("link", "M10 14a5 5 0 0 0 7 0l3-3a5 5 0 0 0-7-7l-1 1M14 10a5 5 0 0 0-7 0l-3 3a5 5 0 0 0 7 7l1-1"),
    ("alert", "M12 3l10 18H2zM12 10v5M12 18v.5"),
    ("inspect", "M11 18a7 7 0 1 0 0-14 7 7 0 0 0 0 14zM21 21l-5-5M11 8v4M11 14.5v.5"),
    ("wallet", "M3 7h16v13H3zM3 7l12-4v4M15 13h4"),
    ("brush", "M20 3l-9 9M11 12c-3 0-5 2-5 4.5 0 1.5-1 2.5-3 3.5 4 1 9 0 9.5-4.5zM14 9l1 1"),
];

fn icon_helper(h: &Helper, _: &Handlebars, _: &Context, _: &mut RenderContext, out: &mut dyn Output) -> HelperResult {
    let name = h.param(0).and_then(|p| p.value().as_str()).unwrap_or("file");
    let path = ICONS.iter().find(|(icon, _)| *icon == name).map(|(_, path)| *path).unwrap_or(ICONS[0].1);
    out.write(&format!(
        "<svg class=\"icon\" viewBox=\"0 0 24 24\" aria-hidden=\"true\" focusable=\"false\"><path d=\"{path}\"/></svg>"
    ))?;
    Ok(())
}

/// `{{human "set" value}}`: the value as people read it ([`crate::labels`]).
fn human_helper(h: &Helper, _: &Handlebars, _: &Context, _: &mut RenderContext, out: &mut dyn Output) -> HelperResult {
    let set = h.param(0).and_then(|p| p.value().as_str()).unwrap_or_default();
    let value = h.param(1).map(|p| p.value()).map_or(String::new(), |value| match value.as_str() {
        Some(text) => text.to_owned(),
        None if value.is_null() => String::new(),
        None => value.to_string(),
    });
    out.write(&handlebars::html_escape(&crate::labels::label(set, &value)))?;
    Ok(())
}

/// `{{datetime value}}`: an RFC 3339 timestamp for people, in the time zone of whoever the
/// page is rendered for ([`ShownZone`]), the zone named: `27 Nov 2026, 09:05 EST`.
/// Anything else is written as it is.
fn datetime_helper(
    h: &Helper,
    _: &Handlebars,
    _: &Context,
    _: &mut RenderContext,
    out: &mut dyn Output,
) -> HelperResult {
    write_time(h, out, "%-d %b %Y, %H:%M %Z")
}

/// `{{time value}}`: the same without the zone, for a column whose heading names it.
fn time_helper(h: &Helper, _: &Handlebars, _: &Context, _: &mut RenderContext, out: &mut dyn Output) -> HelperResult {
    write_time(h, out, "%-d %b %Y, %H:%M")
}

fn write_time(h: &Helper, out: &mut dyn Output, format: &str) -> HelperResult {
    let value = h.param(0).and_then(|p| p.value().as_str()).unwrap_or_default();
    match chrono::DateTime::parse_from_rfc3339(value) {
        Ok(time) => out.write(&time.with_timezone(&ShownZone::current()).format(format).to_string())?,
        Err(_) => out.write(value)?,
    }
    Ok(())
}

thread_local! {
    static SHOWN_ZONE: std::cell::Cell<chrono_tz::Tz> = const { std::cell::Cell::new(chrono_tz::Tz::UTC) };
}

/// The time zone `{{datetime}}` shows times in while a page is rendered: the person's, set
/// around the (synchronous) render on its thread, UTC otherwise.
pub struct ShownZone {
    before: chrono_tz::Tz,
}

impl ShownZone {
    /// Shows times in `time_zone` (an IANA name; UTC when unknown) until dropped.
    pub fn set(time_zone: &str) -> ShownZone {
        let zone = time_zone.parse().unwrap_or(chrono_tz::Tz::UTC);
        ShownZone { before: SHOWN_ZONE.with(|shown| shown.replace(zone)) }
    }

    pub fn current() -> chrono_tz::Tz {
        SHOWN_ZONE.with(std::cell::Cell::get)
    }
}

impl Drop for ShownZone {
    fn drop(&mut self) {
        SHOWN_ZONE.with(|shown| shown.set(self.before));
    }
}
