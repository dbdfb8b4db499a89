//! Payment Page styles: per project, named designs (colours, font, corner radius, logo
//! and its placement, a background image, texts in English and one more language) that
//! people edit as drafts and publish, one per project. Each publication is kept as a
//! version that cannot change afterwards; reverting publishes an old version again as a
//! new one. Customers only ever see published versions.
//!
//! Images are checked by decoding them (PNG, JPEG or WebP, never SVG), then encoded again
//! and stored: what the page serves is what this code wrote, not what was uploaded.

use std::io::Cursor;

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::schema::{page_assets, page_style_versions, page_styles, project_checkout};
use dashboard_core::audit::AuditEvent;
use dashboard_core::auth::Principal;
use dashboard_core::db::DbPool;
use dashboard_core::db::prelude::*;
use dashboard_core::time::{Timestamp, now};
use dashboard_core::{AppError, AppState};

/// The largest image people may upload.
pub const MAX_IMAGE_BYTES: usize = 1024 * 1024;
/// The most styles a project keeps.
const MOST_STYLES: i64 = 50;

crate::model::text_enum!(
    /// A font every device has, so the page loads no font file.
    Font as "page_font" {
        System => "system" as "System (the device's own)",
        Humanist => "humanist" as "Humanist sans (Segoe, Helvetica)",
        Verdana => "verdana" as "Verdana",
        Georgia => "georgia" as "Georgia (serif)",
        Palatino => "palatino" as "Palatino (serif)",
        Monospace => "monospace" as "Monospace",
    }
);

impl Font {
    /// The CSS font stack.
    pub fn stack(self) -> &'static str {
        match self {
            Font::System => "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
            Font::Humanist => "'Segoe UI', 'Helvetica Neue', Helvetica, Arial, sans-serif",
            Font::Verdana => "Verdana, Geneva, sans-serif",
            Font::Georgia => "Georgia, 'Times New Roman', serif",
            Font::Palatino => "'Palatino Linotype', Palatino, 'Book Antiqua', serif",
            Font::Monospace => "ui-monospace, Menlo, Consolas, monospace",
        }
    }
}

crate::model::text_enum!(
    /// Where the logo sits above the form.
    Placement as "logo_placement" { Left => "left" as "Left", Center => "center" as "Centre", Right => "right" as "Right" }
);

crate::model::text_enum!(
    /// A language a style's texts are translated into, besides English; the customer's
    /// browser chooses.
    Language as "page_language" {
        De => "de" as "German",
        Fr => "fr" as "French",
        Es => "es" as "Spanish",
        It => "it" as "Italian",
        Nl => "nl" as "Dutch",
        Pl => "pl" as "Polish",
        Pt => "pt" as "Portuguese",
    }
);

/// The colours of the page's main elements, `#rrggbb`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, poem_openapi::Object)]
pub struct Colors {
    #[oai(validator(pattern = "^#[0-9a-fA-F]{6}$"))]
    pub background: String,
    /// The card the form sits on.
    #[oai(validator(pattern = "^#[0-9a-fA-F]{6}$"))]
    pub surface: String,
    #[oai(validator(pattern = "^#[0-9a-fA-F]{6}$"))]
    pub text: String,
    /// The pay button (its label is white or black, whichever reads better).
    #[oai(validator(pattern = "^#[0-9a-fA-F]{6}$"))]
    pub primary: String,
    #[oai(validator(pattern = "^#[0-9a-fA-F]{6}$"))]
    pub link: String,
    #[oai(validator(pattern = "^#[0-9a-fA-F]{6}$"))]
    pub error: String,
}

/// The page's texts in English.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, poem_openapi::Object)]
pub struct PageTexts {
    /// The page's heading.
    #[oai(validator(min_length = 1, max_length = 80, pattern = r"\S"))]
    pub title: String,
    /// The pay button's label.
    #[oai(validator(min_length = 1, max_length = 40, pattern = r"\S"))]
    pub button: String,
    /// A note under the form (the shop's address, a support e-mail).
    #[oai(validator(max_length = 300))]
    pub footer: String,
}

/// The page's texts in one more language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, poem_openapi::Object)]
pub struct Translation {
    pub language: Language,
    #[oai(validator(min_length = 1, max_length = 80, pattern = r"\S"))]
    pub title: String,
    #[oai(validator(min_length = 1, max_length = 40, pattern = r"\S"))]
    pub button: String,
    #[oai(validator(max_length = 300))]
    pub footer: String,
}

/// The texts a customer reads, in their language.
#[derive(Debug, Clone, Serialize)]
pub struct ShownTexts<'a> {
    /// The page's language (`en`, `de`, …).
    pub language: &'static str,
    /// The translation's language; none for English.
    #[serde(skip)]
    pub translated: Option<Language>,
    pub title: &'a str,
    pub button: &'a str,
    pub footer: &'a str,
}

/// A Payment Page design.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Design {
    pub colors: Colors,
    pub font: Font,
    /// Corner radius of the card, fields and button, in pixels.
    #[oai(validator(minimum(value = "0"), maximum(value = "24")))]
    pub corner_radius: i32,
    pub logo_placement: Placement,
    pub texts: PageTexts,
    /// The texts in one more language, for customers whose browser prefers it.
    pub translation: Option<Translation>,
}

impl Default for Design {
    fn default() -> Design {
        Design {
            colors: Colors {
                background: "#f4f6f8".to_owned(),
                surface: "#ffffff".to_owned(),
                text: "#1a2332".to_owned(),
                primary: "#1f5fbf".to_owned(),
                link: "#1f5fbf".to_owned(),
                error: "#b3261e".to_owned(),
            },
            font: Font::System,
            corner_radius: 8,
            logo_placement: Placement::Left,
            texts: PageTexts { title: "Payment".to_owned(), button: "Pay".to_owned(), footer: String::new() },
            translation: None,
        }
    }
}

/// Texts trimmed and within their lengths (`language` names them in the message).
fn checked_texts(title: &mut String, button: &mut String, footer: &mut String, language: &str) -> Result<(), AppError> {
    let bad = |message: String| AppError::BadRequest(message);
    for text in [&mut *title, &mut *button, &mut *footer] {
        *text = text.trim().to_owned();
    }
    if title.is_empty() || title.chars().count() > 80 {
        return Err(bad(format!("The {language} title has 1 to 80 characters.")));
    }
    if button.is_empty() || button.chars().count() > 40 {
        return Err(bad(format!("The {language} button label has 1 to 40 characters.")));
    }
    if footer.chars().count() > 300 {
        return Err(bad(format!("The {language} footer has at most 300 characters.")));
    }
    Ok(())
}

/// `#rrggbb` as red, green and blue.
fn rgb(hex: &str) -> Option<[u8; 3]> {
    let digits = hex.strip_prefix('#').filter(|d| d.len() == 6 && d.bytes().all(|b| b.is_ascii_hexdigit()))?;
    let channel = |at: usize| u8::from_str_radix(&digits[at..at + 2], 16).ok();
    Some([channel(0)?, channel(2)?, channel(4)?])
}

/// WCAG 2.1 relative luminance.
fn luminance([r, g, b]: [u8; 3]) -> f64 {
    let linear = |channel: u8| {
        let c = f64::from(channel) / 255.0;
        if c <= 0.039_28 { c / 12.92 } else { ((c + 0.055) / 1.055).powf(2.4) }
    };
    0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)
}

/// WCAG 2.1 contrast ratio of two colours (1 to 21).
pub fn contrast(first: &str, second: &str) -> f64 {
    match (rgb(first), rgb(second)) {
        (Some(a), Some(b)) => {
            let (la, lb) = (luminance(a), luminance(b));
            (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
        }
        _ => 1.0,
    }
}

/// The pay button's label colour: white or near-black, whichever reads better on it.
pub fn on_primary(primary: &str) -> &'static str {
    if contrast("#ffffff", primary) >= contrast("#111111", primary) { "#ffffff" } else { "#111111" }
}

/// WCAG AA's least contrast for text.
pub const AA_TEXT: f64 = 4.5;

impl Design {
    /// The colour pairs below WCAG AA contrast, as people read them: shown before
    /// publishing (a warning, not a refusal: a brand may insist).
    pub fn contrast_warnings(&self) -> Vec<String> {
        let c = &self.colors;
        let button_label = on_primary(&c.primary);
        let pairs = [
            ("Text on the background", c.text.as_str(), c.background.as_str()),
            ("Text on the card", &c.text, &c.surface),
            ("Links on the card", &c.link, &c.surface),
            ("Errors on the card", &c.error, &c.surface),
            ("The button's label on the button", button_label, &c.primary),
        ];
        pairs
            .into_iter()
            .filter_map(|(what, fore, back)| {
                let ratio = contrast(fore, back);
                (ratio < AA_TEXT)
                    .then(|| format!("{what}: contrast {ratio:.1}:1, below the 4.5:1 WCAG AA asks for text."))
            })
            .collect()
    }

    /// The design, checked: colours `#rrggbb` (lower case), a radius of 0–24, texts
    /// within their lengths.
    pub fn checked(mut self) -> Result<Design, AppError> {
        let bad = |message: String| AppError::BadRequest(message);
        for (what, value) in [
            ("background", &mut self.colors.background),
            ("card", &mut self.colors.surface),
            ("text", &mut self.colors.text),
            ("button", &mut self.colors.primary),
            ("link", &mut self.colors.link),
            ("error", &mut self.colors.error),
        ] {
            *value = value.trim().to_ascii_lowercase();
            if rgb(value).is_none() {
                return Err(bad(format!("The {what} colour must be written #rrggbb.")));
            }
        }
        if !(0..=24).contains(&self.corner_radius) {
            return Err(bad("The corner radius is 0 to 24 pixels.".to_owned()));
        }
        let texts = &mut self.texts;
        checked_texts(&mut texts.title, &mut texts.button, &mut texts.footer, "English")?;
        if let Some(translation) = &mut self.translation {
            let language = translation.language.label();
            checked_texts(&mut translation.title, &mut translation.button, &mut translation.footer, language)?;
        }
        Ok(self)
    }

    /// The texts for a customer whose browser asks for `accept_language` (the header):
    /// the translation if the browser prefers its language to English, else English.
    pub fn texts_for(&self, accept_language: Option<&str>) -> ShownTexts<'_> {
        let english = ShownTexts {
            language: "en",
            translated: None,
            title: &self.texts.title,
            button: &self.texts.button,
            footer: &self.texts.footer,
        };
        let Some(translation) = &self.translation else { return english };
        for part in accept_language.unwrap_or("").split(',') {
            let tag = part.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            let primary = tag.split('-').next().unwrap_or("");
            if primary == "en" {
                return english;
            }
            if Language::parse(primary) == Some(translation.language) {
                return ShownTexts {
                    language: translation.language.as_str(),
                    translated: Some(translation.language),
                    title: &translation.title,
                    button: &translation.button,
                    footer: &translation.footer,
                };
            }
        }
        english
    }

    /// The style sheet of this design: custom properties the page's own style sheet uses.
    pub fn css(&self, background_url: Option<&str>) -> String {
        let c = &self.colors;
        let justify = match self.logo_placement {
            Placement::Left => "flex-start",
            Placement::Center => "center",
            Placement::Right => "flex-end",
        };
        let background = background_url.map_or(String::new(), |url| format!("--pp-background-image:url(\"{url}\");"));
        format!(
            ":root{{--pp-background:{};--pp-surface:{};--pp-text:{};--pp-primary:{};--pp-on-primary:{};--pp-link:{};\
             --pp-error:{};--pp-font:{};--pp-radius:{}px;--pp-logo-justify:{justify};{background}}}\n",
            c.background,
            c.surface,
            c.text,
            c.primary,
            on_primary(&c.primary),
            c.link,
            c.error,
            self.font.stack(),
            self.corner_radius,
        )
    }
}

/// Which of a style's images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageSlot {
    Logo,
    Background,
}

/// An image as the page serves it.
pub struct StoredImage {
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// An uploaded image, checked by decoding it and encoded again: PNG for a logo (it keeps
/// transparency), JPEG for a background (a photograph); scaled down to fit.
pub fn reencode(bytes: &[u8], slot: ImageSlot) -> Result<(StoredImage, u32, u32), AppError> {
    let refused = |why: &str| AppError::Unprocessable(why.to_owned());
    if bytes.len() > MAX_IMAGE_BYTES {
        return Err(AppError::PayloadTooLarge("An image may be at most 1 MB.".to_owned()));
    }
    let reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|_| refused("The file could not be read."))?;
    match reader.format() {
        Some(image::ImageFormat::Png | image::ImageFormat::Jpeg | image::ImageFormat::WebP) => {}
        _ => return Err(refused("The image must be a PNG, JPEG or WebP file (SVG is not accepted).")),
    }
    let mut limits = image::Limits::default();
    // A small file can hold a huge picture: what decoding may take is bounded.
    limits.max_image_width = Some(5_000);
    limits.max_image_height = Some(5_000);
    limits.max_alloc = Some(128 * 1024 * 1024);
    let mut reader = reader;
    reader.limits(limits);
    let decoded = reader.decode().map_err(|_| refused("The image could not be decoded: is it a damaged file?"))?;
    let (fit_width, fit_height) = match slot {
        ImageSlot::Logo => (800, 400),
        ImageSlot::Background => (1600, 1600),
    };
    // `thumbnail` scales in the image's own pixels (a filtered resize would allocate
    // floating-point copies of the whole picture).
    let fitted = if decoded.width() > fit_width || decoded.height() > fit_height {
        decoded.thumbnail(fit_width, fit_height)
    } else {
        decoded
    };
    let mut out = Cursor::new(Vec::new());
    let content_type = match slot {
        ImageSlot::Logo => {
            fitted.write_to(&mut out, image::ImageFormat::Png).map_err(|e| AppError::Internal(e.to_string()))?;
            "image/png"
        }
        ImageSlot::Background => {
            let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 75);
            fitted.to_rgb8().write_with_encoder(encoder).map_err(|e| AppError::Internal(e.to_string()))?;
            "image/jpeg"
        }
    };
    Ok((
        StoredImage { content_type: content_type.to_owned(), bytes: out.into_inner() },
        fitted.width(),
        fitted.height(),
    ))
}

/// A style.
#[derive(Debug, Clone, Serialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct StyleView {
    pub id: i64,
    pub project_id: i64,
    pub name: String,
    pub design: Design,
    /// Where the page loads the logo from (none: no logo).
    pub logo_url: Option<String>,
    pub background_url: Option<String>,
    /// Whether the project's published version was published from this style.
    pub published: bool,
    /// Colour pairs below WCAG AA contrast.
    pub contrast_warnings: Vec<String>,
    pub updated_at: Timestamp,
}

/// A version a project published.
#[derive(Debug, Clone, Serialize, poem_openapi::Object)]
#[oai(skip_serializing_if_is_none)]
pub struct VersionView {
    pub id: i64,
    pub project_id: i64,
    /// 1, 2, … per project.
    pub version: i32,
    pub style_id: i64,
    pub style_name: String,
    /// The version this one published again, for a revert.
    pub reverted_from: Option<i32>,
    /// Whether customers see this version now.
    pub current: bool,
    pub published_by: Option<i64>,
    pub published_at: Timestamp,
}

/// What the hosted page shows: a design and its images, with the address of its style
/// sheet.
#[derive(Debug, Clone)]
pub struct Look {
    pub design: Design,
    pub logo_url: Option<String>,
    pub background_url: Option<String>,
    /// The style sheet's address: never changes for a version, so browsers keep it.
    pub css_url: String,
}

#[derive(Clone, Queryable, Selectable)]
#[diesel(table_name = page_styles, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct StyleRow {
    id: i64,
    company_id: i64,
    project_id: i64,
    name: String,
    design: String,
    logo_asset_id: Option<i64>,
    background_asset_id: Option<i64>,
    updated_at: NaiveDateTime,
}

#[derive(Clone, Queryable, Selectable)]
#[diesel(table_name = page_style_versions, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct VersionRow {
    id: i64,
    project_id: i64,
    style_id: i64,
    style_name: String,
    version: i32,
    design: String,
    logo_asset_id: Option<i64>,
    background_asset_id: Option<i64>,
    reverted_from: Option<i32>,
    published_by: Option<i64>,
    published_at: NaiveDateTime,
}

/// An image's public address: its id and a part of its hash, so that addresses cannot
/// be counted through and a new image never reuses a cached one's.
pub fn image_url(asset: (i64, &str)) -> String {
    format!("/pay/images/{}-{}", asset.0, &asset.1[..16.min(asset.1.len())])
}

fn design_of(stored: &str) -> Design {
    serde_json::from_str(stored).unwrap_or_default()
}

fn design_text(design: &Design) -> Result<String, AppError> {
    serde_json::to_string(design).map_err(|e| AppError::Internal(e.to_string()))
}

/// The hashes of images, by id.
async fn image_hashes(db: &DbPool, ids: Vec<i64>) -> Result<std::collections::HashMap<i64, String>, AppError> {
    if ids.is_empty() {
        return Ok(std::collections::HashMap::new());
    }
    let rows: Vec<(i64, String)> = dashboard_core::db_run!(db, conn => {
        page_assets::table.filter(page_assets::id.eq_any(ids)).select((page_assets::id, page_assets::sha256)).load(conn).await
    })?;
    Ok(rows.into_iter().collect())
}

/// The id of the version customers of `project_id` see, and the style it came from.
async fn published_of(db: &DbPool, project_id: i64) -> Result<Option<(i64, i64)>, AppError> {
    let row: Option<(i64, i64)> = dashboard_core::db_run!(db, conn => {
        project_checkout::table
            .inner_join(page_style_versions::table.on(page_style_versions::id.nullable().eq(project_checkout::published_version_id)))
            .filter(project_checkout::project_id.eq(project_id))
            .select((page_style_versions::id, page_style_versions::style_id))
            .first(conn)
            .await
            .optional()
    })?;
    Ok(row)
}

async fn views_of(db: &DbPool, rows: Vec<StyleRow>) -> Result<Vec<StyleView>, AppError> {
    let images: Vec<i64> = rows.iter().flat_map(|row| [row.logo_asset_id, row.background_asset_id]).flatten().collect();
    let hashes = image_hashes(db, images).await?;
    let url = |id: Option<i64>| id.and_then(|id| hashes.get(&id).map(|hash| image_url((id, hash))));
    let mut published = std::collections::HashMap::new();
    let mut views = Vec::with_capacity(rows.len());
    for row in rows {
        if let std::collections::hash_map::Entry::Vacant(entry) = published.entry(row.project_id) {
            entry.insert(published_of(db, row.project_id).await?.map(|(_, style)| style));
        }
        let design = design_of(&row.design);
        views.push(StyleView {
            id: row.id,
            project_id: row.project_id,
            name: row.name,
            contrast_warnings: design.contrast_warnings(),
            design,
            logo_url: url(row.logo_asset_id),
            background_url: url(row.background_asset_id),
            published: published.get(&row.project_id).copied().flatten() == Some(row.id),
            updated_at: Timestamp::from(&row.updated_at),
        });
    }
    Ok(views)
}

/// The styles of the projects the principal may see (of one project, if given).
pub async fn list(
    state: &AppState,
    principal: &Principal,
    project_id: Option<i64>,
) -> Result<Vec<StyleView>, AppError> {
    let projects: Vec<i64> = dashboard_core::directory::visible_projects(&state.db, principal)
        .await?
        .into_iter()
        .map(|project| project.id)
        .filter(|id| project_id.is_none_or(|wanted| wanted == *id))
        .collect();
    let rows: Vec<StyleRow> = dashboard_core::db_run!(state.db, conn => {
        page_styles::table
            .filter(page_styles::project_id.eq_any(projects))
            .filter(page_styles::deleted_at.is_null())
            .order((page_styles::project_id.asc(), page_styles::name.asc(), page_styles::id.asc()))
            .select(StyleRow::as_select())
            .load(conn)
            .await
    })?;
    views_of(&state.db, rows).await
}

async fn visible_row(state: &AppState, principal: &Principal, id: i64) -> Result<StyleRow, AppError> {
    let row: Option<StyleRow> = dashboard_core::db_run!(state.db, conn => {
        page_styles::table
            .find(id)
            .filter(page_styles::deleted_at.is_null())
            .select(StyleRow::as_select())
            .first(conn)
            .await
            .optional()
    })?;
    match row {
        Some(row) if row.company_id == principal.company_id && principal.projects.allows(row.project_id) => Ok(row),
        _ => Err(AppError::NotFound),
    }
}

/// A style the principal may see.
pub async fn view(state: &AppState, principal: &Principal, id: i64) -> Result<StyleView, AppError> {
    let row = visible_row(state, principal, id).await?;
    views_of(&state.db, vec![row]).await?.pop().ok_or(AppError::NotFound)
}

/// Refuses a style that is not one of `project_id`'s (for a link that names one).
pub async fn require_style_of(db: &DbPool, project_id: i64, style_id: i64) -> Result<(), AppError> {
    let found: Option<i64> = dashboard_core::db_run!(db, conn => {
        page_styles::table
            .find(style_id)
            .filter(page_styles::project_id.eq(project_id))
            .filter(page_styles::deleted_at.is_null())
            .select(page_styles::id)
            .first(conn)
            .await
            .optional()
    })?;
    found.map(|_| ()).ok_or_else(|| AppError::BadRequest("Choose a style of the link's project.".to_owned()))
}

fn checked_name(name: &str) -> Result<String, AppError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 80 {
        return Err(AppError::BadRequest("A style's name has 1 to 80 characters.".to_owned()));
    }
    Ok(name.to_owned())
}

/// Creates a style in a project the principal may use (with the default design when none
/// is given); audited in the same write.
pub async fn create(
    state: &AppState,
    principal: &Principal,
    project_id: i64,
    name: &str,
    design: Option<Design>,
) -> Result<StyleView, AppError> {
    dashboard_core::directory::visible_project(&state.db, principal, project_id).await?;
    let name = checked_name(name)?;
    let design = design.unwrap_or_default().checked()?;
    insert(state, principal, project_id, name, &design, (None, None)).await
}

async fn insert(
    state: &AppState,
    principal: &Principal,
    project_id: i64,
    name: String,
    design: &Design,
    images: (Option<i64>, Option<i64>),
) -> Result<StyleView, AppError> {
    let event = AuditEvent::success(principal, "payment_page.style_create")
        .target(format!("project {project_id}"))
        .details(serde_json::json!({ "name": name }));
    let by = Author { company_id: principal.company_id, user_id: principal.person(), event: Some(event) };
    let id = insert_row(&state.db, by, project_id, &name, design, images).await?;
    view(state, principal, id).await
}

/// Who writes: the company, the person (none for the demo's data) and the audit event
/// written with it.
struct Author {
    company_id: i64,
    user_id: Option<i64>,
    event: Option<AuditEvent>,
}

/// Stores a style; its id.
async fn insert_row(
    db: &DbPool,
    by: Author,
    project_id: i64,
    name: &str,
    design: &Design,
    images: (Option<i64>, Option<i64>),
) -> Result<i64, AppError> {
    let stored = design_text(design)?;
    let (Author { company_id, user_id, event }, at) = (by, now());
    dashboard_core::db_transaction!(db, conn => {
        let count: i64 = page_styles::table
            .filter(page_styles::project_id.eq(project_id))
            .filter(page_styles::deleted_at.is_null())
            .count()
            .get_result(conn)
            .await?;
        if count >= MOST_STYLES {
            return Err(AppError::Conflict(format!("A project keeps at most {MOST_STYLES} styles; delete one first.")));
        }
        let id = diesel::insert_into(page_styles::table)
            .values((
                page_styles::company_id.eq(company_id),
                page_styles::project_id.eq(project_id),
                page_styles::name.eq(name),
                page_styles::design.eq(&stored),
                page_styles::logo_asset_id.eq(images.0),
                page_styles::background_asset_id.eq(images.1),
                page_styles::created_by.eq(user_id),
                page_styles::created_at.eq(at),
                page_styles::updated_by.eq(user_id),
                page_styles::updated_at.eq(at),
            ))
            .returning(page_styles::id)
            .get_result(conn)
            .await?;
        if let Some(event) = event {
            dashboard_core::record_audit!(conn, event)?;
        }
        Ok::<_, AppError>(id)
    })
}

/// Saves a style's draft: its name and design; audited in the same write.
pub async fn update(
    state: &AppState,
    principal: &Principal,
    id: i64,
    name: &str,
    design: Design,
) -> Result<StyleView, AppError> {
    let row = visible_row(state, principal, id).await?;
    let name = checked_name(name)?;
    let stored = design_text(&design.checked()?)?;
    let event = AuditEvent::success(principal, "payment_page.style_update")
        .target(format!("style {id}"))
        .details(serde_json::json!({ "project_id": row.project_id, "name": name }));
    let (user_id, at) = (principal.person(), now());
    dashboard_core::db_transaction!(state.db, conn => {
        diesel::update(page_styles::table.find(id))
            .set((
                page_styles::name.eq(&name),
                page_styles::design.eq(&stored),
                page_styles::updated_by.eq(user_id),
                page_styles::updated_at.eq(at),
            ))
            .execute(conn)
            .await?;
        dashboard_core::record_audit!(conn, event)?;
        Ok::<_, AppError>(())
    })?;
    view(state, principal, id).await
}

/// Images decoded at once, across the server.
static DECODING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// Sets (or, with no bytes, removes) a style's logo or background image: checked by
/// decoding, encoded again and stored; audited in the same write.
pub async fn set_image(
    state: &AppState,
    principal: &Principal,
    id: i64,
    slot: ImageSlot,
    bytes: Option<&[u8]>,
) -> Result<StyleView, AppError> {
    let row = visible_row(state, principal, id).await?;
    let image = match bytes {
        None => None,
        Some(bytes) => {
            let bytes = bytes.to_vec();
            // Decoding is CPU work and memory (up to the limits of `reencode`): off the
            // request threads, one image at a time.
            let _turn = DECODING.acquire().await.map_err(|e| AppError::Internal(e.to_string()))?;
            Some(
                tokio::task::spawn_blocking(move || reencode(&bytes, slot))
                    .await
                    .map_err(|e| AppError::Internal(e.to_string()))??,
            )
        }
    };
    let what = if slot == ImageSlot::Logo { "logo" } else { "background image" };
    let event = AuditEvent::success(principal, "payment_page.style_image")
        .target(format!("style {id}"))
        .details(serde_json::json!({ "image": what, "removed": image.is_none() }));
    let (company_id, project_id, user_id, at) = (row.company_id, row.project_id, principal.person(), now());
    dashboard_core::db_transaction!(state.db, conn => {
        let asset = match &image {
            None => None,
            Some((stored, width, height)) => Some(
                diesel::insert_into(page_assets::table)
                    .values((
                        page_assets::company_id.eq(company_id),
                        page_assets::project_id.eq(project_id),
                        page_assets::content_type.eq(&stored.content_type),
                        page_assets::bytes.eq(&stored.bytes),
                        page_assets::sha256.eq(format!("{:x}", sha2::Sha256::digest(&stored.bytes))),
                        page_assets::width.eq(i32::try_from(*width).unwrap_or(i32::MAX)),
                        page_assets::height.eq(i32::try_from(*height).unwrap_or(i32::MAX)),
                        page_assets::created_by.eq(user_id),
                        page_assets::created_at.eq(at),
                    ))
                    .returning(page_assets::id)
                    .get_result::<i64>(conn)
                    .await?,
            ),
        };
        let target = diesel::update(page_styles::table.find(id));
        match slot {
            ImageSlot::Logo => target.set((page_styles::logo_asset_id.eq(asset), page_styles::updated_at.eq(at))).execute(conn).await?,
            ImageSlot::Background => {
                target.set((page_styles::background_asset_id.eq(asset), page_styles::updated_at.eq(at))).execute(conn).await?
            }
        };
        dashboard_core::record_audit!(conn, event)?;
        Ok::<_, AppError>(())
    })?;
    view(state, principal, id).await
}

/// Copies a style (its images too) under a new name.
pub async fn duplicate(state: &AppState, principal: &Principal, id: i64) -> Result<StyleView, AppError> {
    let row = visible_row(state, principal, id).await?;
    let name: String = format!("Copy of {}", row.name).chars().take(80).collect();
    insert(
        state,
        principal,
        row.project_id,
        name,
        &design_of(&row.design),
        (row.logo_asset_id, row.background_asset_id),
    )
    .await
}

/// Deletes a style (its published versions stay, and so does what customers see);
/// audited in the same write.
pub async fn delete(state: &AppState, principal: &Principal, id: i64) -> Result<(), AppError> {
    let row = visible_row(state, principal, id).await?;
    let event = AuditEvent::success(principal, "payment_page.style_delete")
        .target(format!("style {id}"))
        .details(serde_json::json!({ "project_id": row.project_id, "name": row.name }));
    let at = now();
    dashboard_core::db_transaction!(state.db, conn => {
        diesel::update(page_styles::table.find(id)).set(page_styles::deleted_at.eq(Some(at))).execute(conn).await?;
        dashboard_core::record_audit!(conn, event)?;
        Ok::<_, AppError>(())
    })
}

/// Stores a new version of a project from `design` and publishes it, in one write.
#[allow(clippy::too_many_arguments)]
async fn publish_version(
    db: &DbPool,
    by: Author,
    project_id: i64,
    style_id: i64,
    style_name: &str,
    design: &str,
    images: (Option<i64>, Option<i64>),
    reverted_from: Option<i32>,
) -> Result<i64, AppError> {
    let (user_id, event, at, name, design) = (by.user_id, by.event, now(), style_name.to_owned(), design.to_owned());
    dashboard_core::db_transaction!(db, conn => {
        // Two publications of a project at once take turns here (the project's checkout
        // row is held), so each numbers its version after the other's.
        diesel::insert_into(project_checkout::table)
            .values((project_checkout::project_id.eq(project_id), project_checkout::updated_at.eq(at)))
            .on_conflict(project_checkout::project_id)
            .do_update()
            .set(project_checkout::updated_at.eq(at))
            .execute(conn)
            .await?;
        let last: Option<i32> = page_style_versions::table
            .filter(page_style_versions::project_id.eq(project_id))
            .select(diesel::dsl::max(page_style_versions::version))
            .first(conn)
            .await?;
        let version_id: i64 = diesel::insert_into(page_style_versions::table)
            .values((
                page_style_versions::project_id.eq(project_id),
                page_style_versions::style_id.eq(style_id),
                page_style_versions::style_name.eq(&name),
                page_style_versions::version.eq(last.unwrap_or(0) + 1),
                page_style_versions::design.eq(&design),
                page_style_versions::logo_asset_id.eq(images.0),
                page_style_versions::background_asset_id.eq(images.1),
                page_style_versions::reverted_from.eq(reverted_from),
                page_style_versions::published_by.eq(user_id),
                page_style_versions::published_at.eq(at),
            ))
            .returning(page_style_versions::id)
            .get_result(conn)
            .await?;
        diesel::insert_into(project_checkout::table)
            .values((
                project_checkout::project_id.eq(project_id),
                project_checkout::published_version_id.eq(Some(version_id)),
                project_checkout::updated_by.eq(user_id),
                project_checkout::updated_at.eq(at),
            ))
            .on_conflict(project_checkout::project_id)
            .do_update()
            .set((
                project_checkout::published_version_id.eq(Some(version_id)),
                project_checkout::updated_by.eq(user_id),
                project_checkout::updated_at.eq(at),
            ))
            .execute(conn)
            .await?;
        if let Some(event) = event {
            dashboard_core::record_audit!(conn, event)?;
        }
        Ok::<_, AppError>(version_id)
    })
}

/// A person publishing, with the audit event of it.
fn publisher(principal: &Principal, project_id: i64, style_id: i64, style: &str, reverted_from: Option<i32>) -> Author {
    let event = AuditEvent::success(principal, "payment_page.publish")
        .target(format!("project {project_id}"))
        .details(serde_json::json!({ "style_id": style_id, "style": style, "reverted_from": reverted_from }));
    Author { company_id: principal.company_id, user_id: principal.person(), event: Some(event) }
}

/// The demo company's first style, published, unless the project has one: a warm design
/// with texts in English and German.
pub async fn add_demo(db: &DbPool, company_id: i64, project_id: i64) -> Result<usize, AppError> {
    let styles: i64 = dashboard_core::db_run!(db, conn => {
        page_styles::table.filter(page_styles::project_id.eq(project_id)).count().get_result(conn).await
    })?;
    if styles > 0 {
        return Ok(0);
    }
    let design = Design {
        colors: Colors {
            background: "#f6f1ea".to_owned(),
            surface: "#ffffff".to_owned(),
            text: "#2b2118".to_owned(),
            primary: "#8a3b12".to_owned(),
            link: "#7a3410".to_owned(),
            error: "#a4161a".to_owned(),
        },
        font: Font::Humanist,
        corner_radius: 12,
        logo_placement: Placement::Center,
        texts: PageTexts {
            title: "Checkout".to_owned(),
            button: "Pay securely".to_owned(),
            footer: "Questions? support@demo-merchant.example".to_owned(),
        },
        translation: Some(Translation {
            language: Language::De,
            title: "Kasse".to_owned(),
            button: "Sicher bezahlen".to_owned(),
            footer: "Fragen? support@demo-merchant.example".to_owned(),
        }),
    };
    let author = || Author { company_id, user_id: None, event: None };
    let id = insert_row(db, author(), project_id, "Warm", &design, (None, None)).await?;
    publish_version(db, author(), project_id, id, "Warm", &design_text(&design)?, (None, None), None).await?;
    Ok(1)
}

/// Publishes a style's draft as its project's new version; audited in the same write.
pub async fn publish(state: &AppState, principal: &Principal, id: i64) -> Result<VersionView, AppError> {
    let row = visible_row(state, principal, id).await?;
    let images = (row.logo_asset_id, row.background_asset_id);
    let by = publisher(principal, row.project_id, id, &row.name, None);
    let version = publish_version(&state.db, by, row.project_id, id, &row.name, &row.design, images, None).await?;
    version_view(state, principal, version).await
}

/// Publishes an old version of a project again, as a new version; audited in the same
/// write.
pub async fn revert(state: &AppState, principal: &Principal, version_id: i64) -> Result<VersionView, AppError> {
    let old = visible_version(state, principal, version_id).await?;
    let images = (old.logo_asset_id, old.background_asset_id);
    let by = publisher(principal, old.project_id, old.style_id, &old.style_name, Some(old.version));
    let version = publish_version(
        &state.db,
        by,
        old.project_id,
        old.style_id,
        &old.style_name,
        &old.design,
        images,
        Some(old.version),
    )
    .await?;
    version_view(state, principal, version).await
}

async fn visible_version(state: &AppState, principal: &Principal, version_id: i64) -> Result<VersionRow, AppError> {
    let row: Option<VersionRow> = dashboard_core::db_run!(state.db, conn => {
        page_style_versions::table.find(version_id).select(VersionRow::as_select()).first(conn).await.optional()
    })?;
    let row = row.ok_or(AppError::NotFound)?;
    dashboard_core::directory::visible_project(&state.db, principal, row.project_id).await?;
    Ok(row)
}

async fn version_view(state: &AppState, principal: &Principal, version_id: i64) -> Result<VersionView, AppError> {
    let row = visible_version(state, principal, version_id).await?;
    let current = published_of(&state.db, row.project_id).await?.map(|(id, _)| id);
    Ok(version_of(row, current))
}

fn version_of(row: VersionRow, current: Option<i64>) -> VersionView {
    VersionView {
        current: current == Some(row.id),
        id: row.id,
        project_id: row.project_id,
        version: row.version,
        style_id: row.style_id,
        style_name: row.style_name,
        reverted_from: row.reverted_from,
        published_by: row.published_by,
        published_at: Timestamp::from(&row.published_at),
    }
}

/// A project's published versions, newest first (at most 100).
pub async fn versions(state: &AppState, principal: &Principal, project_id: i64) -> Result<Vec<VersionView>, AppError> {
    dashboard_core::directory::visible_project(&state.db, principal, project_id).await?;
    let rows: Vec<VersionRow> = dashboard_core::db_run!(state.db, conn => {
        page_style_versions::table
            .filter(page_style_versions::project_id.eq(project_id))
            .order(page_style_versions::version.desc())
            .limit(100)
            .select(VersionRow::as_select())
            .load(conn)
            .await
    })?;
    let current = published_of(&state.db, project_id).await?.map(|(id, _)| id);
    Ok(rows.into_iter().map(|row| version_of(row, current)).collect())
}

/// The look of a version, as customers see it.
async fn look_of_version(db: &DbPool, version_id: i64) -> Result<Option<Look>, AppError> {
    let row: Option<VersionRow> = dashboard_core::db_run!(db, conn => {
        page_style_versions::table.find(version_id).select(VersionRow::as_select()).first(conn).await.optional()
    })?;
    let Some(row) = row else { return Ok(None) };
    let hashes = image_hashes(db, [row.logo_asset_id, row.background_asset_id].into_iter().flatten().collect()).await?;
    let url = |id: Option<i64>| id.and_then(|id| hashes.get(&id).map(|hash| image_url((id, hash))));
    Ok(Some(Look {
        design: design_of(&row.design),
        logo_url: url(row.logo_asset_id),
        background_url: url(row.background_asset_id),
        css_url: format!("/pay/looks/{}.css", row.id),
    }))
}

/// What customers of `project_id` see: the newest version published from the link's
/// style if it names one that was published, else the project's published version, else
/// the default design.
pub async fn look_for(db: &DbPool, project_id: i64, style_id: Option<i64>) -> Result<Look, AppError> {
    let from_style: Option<i64> = match style_id {
        None => None,
        Some(style_id) => dashboard_core::db_run!(db, conn => {
            page_style_versions::table
                .filter(page_style_versions::project_id.eq(project_id))
                .filter(page_style_versions::style_id.eq(style_id))
                .order(page_style_versions::version.desc())
                .select(page_style_versions::id)
                .first(conn)
                .await
                .optional()
        })?,
    };
    let version = match from_style {
        Some(version) => Some(version),
        None => published_of(db, project_id).await?.map(|(version, _)| version),
    };
    if let Some(version) = version
        && let Some(look) = look_of_version(db, version).await?
    {
        return Ok(look);
    }
    Ok(Look {
        design: Design::default(),
        logo_url: None,
        background_url: None,
        css_url: "/pay/looks/default.css".to_owned(),
    })
}

/// The style sheet of a version (`default` for the default design); none for an unknown
/// one.
pub async fn version_css(db: &DbPool, version: &str) -> Result<Option<String>, AppError> {
    if version == "default" {
        return Ok(Some(Design::default().css(None)));
    }
    let Ok(id) = version.parse::<i64>() else { return Ok(None) };
    Ok(look_of_version(db, id).await?.map(|look| look.design.css(look.background_url.as_deref())))
}

/// A draft's look for its preview: the saved style, or `design` instead of its saved
/// design (what the form holds, not yet saved).
pub async fn preview_look(
    state: &AppState,
    principal: &Principal,
    id: i64,
    design: Option<Design>,
) -> Result<(StyleView, Design), AppError> {
    let style = view(state, principal, id).await?;
    let design = match design {
        Some(design) => design.checked()?,
        None => style.design.clone(),
    };
    Ok((style, design))
}

/// An image by its public address (`<id>-<hash prefix>`).
pub async fn image(db: &DbPool, address: &str) -> Result<StoredImage, AppError> {
    let (id, prefix) = address.split_once('-').ok_or(AppError::NotFound)?;
    let id: i64 = id.parse().map_err(|_| AppError::NotFound)?;
    let row: Option<(String, Vec<u8>, String)> = dashboard_core::db_run!(db, conn => {
        page_assets::table.find(id).select((page_assets::content_type, page_assets::bytes, page_assets::sha256)).first(conn).await.optional()
    })?;
    match row {
        Some((content_type, bytes, sha256)) if prefix.len() == 16 && sha256.starts_with(prefix) => {
            Ok(StoredImage { content_type, bytes })
        }
        _ => Err(AppError::NotFound),
    }
}

/// The styles links of these projects may name: (id, project, name).
pub async fn choices(db: &DbPool, project_ids: Vec<i64>) -> Result<Vec<(i64, i64, String)>, AppError> {
    dashboard_core::db_run!(db, conn => {
        page_styles::table
            .filter(page_styles::project_id.eq_any(project_ids))
            .filter(page_styles::deleted_at.is_null())
            .order((page_styles::project_id.asc(), page_styles::name.asc()))
            .select((page_styles::id, page_styles::project_id, page_styles::name))
            .load(conn)
            .await
    })
    .map_err(AppError::from)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn contrast_follows_wcag() {
        assert!((contrast("#000000", "#ffffff") - 21.0).abs() < 0.01);
        assert!((contrast("#777777", "#ffffff") - 4.48).abs() < 0.01);
        assert_eq!(on_primary("#1f5fbf"), "#ffffff");
        assert_eq!(on_primary("#ffd700"), "#111111");
    }

    #[test]
    fn the_default_design_passes_and_pale_text_is_warned_about() {
        assert!(Design::default().contrast_warnings().is_empty());
        let mut pale = Design::default();
        pale.colors.text = "#bbbbbb".to_owned();
        let warnings = pale.contrast_warnings();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].starts_with("Text on the background"));
    }

    #[test]
    fn the_browser_chooses_among_the_styles_languages() {
        let design = Design {
            translation: Some(Translation {
                language: Language::De,
                title: "Zahlung".to_owned(),
                button: "Bezahlen".to_owned(),
                footer: String::new(),
            }),
            ..Design::default()
        };
        assert_eq!(design.texts_for(Some("de-DE,de;q=0.9,en;q=0.8")).button, "Bezahlen");
        assert_eq!(design.texts_for(Some("en-GB,de;q=0.9")).button, "Pay", "English comes first for this browser");
        assert_eq!(design.texts_for(Some("fr-FR,fr;q=0.9")).button, "Pay");
        assert_eq!(design.texts_for(None).button, "Pay");
    }

    #[test]
    fn only_real_raster_images_are_kept() {
        let svg = br#"<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>"#;
        assert!(matches!(reencode(svg, ImageSlot::Logo), Err(AppError::Unprocessable(_))));
        assert!(matches!(reencode(b"GIF89a not really", ImageSlot::Logo), Err(AppError::Unprocessable(_))));
        let mut png = Cursor::new(Vec::new());
        image::RgbaImage::from_pixel(1200, 300, image::Rgba([10, 20, 30, 255]))
            .write_to(&mut png, image::ImageFormat::Png)
            .unwrap();
        let (stored, width, height) = reencode(png.get_ref(), ImageSlot::Logo).unwrap();
        assert_eq!((stored.content_type.as_str(), width, height), ("image/png", 800, 200));
        let truncated = &png.get_ref()[..png.get_ref().len() / 2];
        assert!(matches!(reencode(truncated, ImageSlot::Logo), Err(AppError::Unprocessable(_))));
    }
}
