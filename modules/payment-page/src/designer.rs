//! The designer's pages: the styles of each project with what was published, the editor
//! with its live preview (the real hosted page with test data, at desktop and phone
//! widths), and the actions on a style.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dashboard_core::directory;
use dashboard_core::web::see_other;
use dashboard_core::{AppError, PageContext};
use dashboard_payments_domain::page_styles::{
    self, Colors, Design, Font, ImageSlot, Language, Look, PageTexts, Placement, StyleView, Translation,
};
use poem::http::{StatusCode, header};
use poem::web::{Form, Html, Multipart, Path, Query};
use poem::{IntoResponse, Request, Response, handler};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::hosted::{Shown, Subject};

/// The preview may be framed by the designer, and only by it.
const PREVIEW_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'none'; \
                              frame-ancestors 'self'; base-uri 'none'";

#[derive(Debug, Default, Deserialize)]
pub struct IndexQuery {
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    notice: Option<String>,
}

fn notice_text(notice: Option<&str>) -> Option<&'static str> {
    match notice {
        Some("published") => Some("Published: customers now pay on this style."),
        Some("reverted") => Some("The earlier version is published again."),
        Some("deleted") => Some("The style is deleted. What customers see has not changed."),
        Some("saved") => Some("The draft is saved. Customers see it once you publish it."),
        Some("image") => Some("The image is saved in the draft."),
        _ => None,
    }
}

#[handler]
pub async fn index(page: PageContext, Query(query): Query<IndexQuery>) -> Result<Html<String>, AppError> {
    let principal = page.principal()?;
    let projects = directory::visible_projects(&page.state.db, principal).await?;
    let chosen = query.project_id.as_deref().filter(|id| !id.is_empty()).and_then(|id| id.parse::<i64>().ok());
    let styles = page_styles::list(&page.state, principal, chosen).await?;
    let mut sections = Vec::new();
    for project in projects.iter().filter(|p| chosen.is_none_or(|id| id == p.id)) {
        let versions = page_styles::versions(&page.state, principal, project.id).await?;
        let own: Vec<&StyleView> = styles.iter().filter(|style| style.project_id == project.id).collect();
        sections.push(json!({
            "project": project,
            "styles": own,
            "versions": versions.iter().take(10).collect::<Vec<_>>(),
            "current": versions.iter().find(|v| v.current),
        }));
    }
    let choices: Vec<Value> =
        projects.iter().map(|p| json!({ "value": p.id, "label": p.name, "selected": chosen == Some(p.id) })).collect();
    let data = json!({
        "sections": sections,
        "projects": choices,
        "filtered": chosen.is_some(),
        "notice": notice_text(query.notice.as_deref()),
        "can_manage": principal.has_permission(crate::MANAGE),
        "csrf_token": page.csrf_token,
    });
    page.render("Payment Page", "payment_page/index", &data)
}

#[derive(Debug, Deserialize)]
pub struct NewStyle {
    #[serde(default)]
    project_id: String,
    #[serde(default)]
    name: String,
}

#[handler]
pub async fn create(page: PageContext, Form(form): Form<NewStyle>) -> Result<Response, AppError> {
    let project_id =
        form.project_id.trim().parse().map_err(|_| AppError::BadRequest("Choose a project.".to_owned()))?;
    let style = page_styles::create(&page.state, page.principal()?, project_id, &form.name, None).await?;
    Ok(see_other(&format!("/payment-page/styles/{}", style.id)))
}

/// The editor's form, field by field.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DesignForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    background: String,
    #[serde(default)]
    surface: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    primary: String,
    #[serde(default)]
    link: String,
    #[serde(default)]
    error: String,
    #[serde(default)]
    font: String,
    #[serde(default)]
    corner_radius: String,
    #[serde(default)]
    logo_placement: String,
    #[serde(default)]
    en_title: String,
    #[serde(default)]
    en_button: String,
    #[serde(default)]
    en_footer: String,
    /// Empty: English only.
    #[serde(default)]
    second_language: String,
    #[serde(default)]
    second_title: String,
    #[serde(default)]
    second_button: String,
    #[serde(default)]
    second_footer: String,
}

impl DesignForm {
    /// The design the form asks for, checked: each choice one of the list's.
    fn design(&self) -> Result<Design, AppError> {
        let bad = |message: &str| AppError::BadRequest(message.to_owned());
        if !self.second_language.is_empty() && Language::parse(&self.second_language).is_none() {
            return Err(bad("Choose a language from the list."));
        }
        let font = Font::parse(&self.font).ok_or_else(|| bad("Choose a font from the list."))?;
        let corner_radius =
            self.corner_radius.trim().parse().map_err(|_| bad("The corner radius is 0 to 24 pixels."))?;
        let logo_placement =
            Placement::parse(&self.logo_placement).ok_or_else(|| bad("Choose where the logo goes."))?;
        Design { font, corner_radius, logo_placement, ..self.typed(&Design::default()) }.checked()
    }

    /// What the form holds, as far as it reads, over `saved`: shown again with an error,
    /// so that nothing typed is lost.
    fn typed(&self, saved: &Design) -> Design {
        let translation = Language::parse(&self.second_language).map(|language| Translation {
            language,
            title: self.second_title.clone(),
            button: self.second_button.clone(),
            footer: self.second_footer.clone(),
        });
        Design {
            colors: Colors {
                background: self.background.clone(),
                surface: self.surface.clone(),
                text: self.text.clone(),
                primary: self.primary.clone(),
                link: self.link.clone(),
                error: self.error.clone(),
            },
            font: Font::parse(&self.font).unwrap_or(saved.font),
            corner_radius: self.corner_radius.trim().parse().unwrap_or(saved.corner_radius),
            logo_placement: Placement::parse(&self.logo_placement).unwrap_or(saved.logo_placement),
            texts: PageTexts {
                title: self.en_title.clone(),
                button: self.en_button.clone(),
                footer: self.en_footer.clone(),
            },
            translation,
        }
    }
}

fn choices<T: Copy + PartialEq>(
    all: &[T],
    chosen: T,
    value: fn(T) -> &'static str,
    label: fn(T) -> &'static str,
) -> Vec<Value> {
    all.iter().map(|&item| json!({ "value": value(item), "label": label(item), "selected": item == chosen })).collect()
}

async fn editor_page(
    page: &PageContext,
    style: &StyleView,
    design: &Design,
    error: Option<String>,
    notice: Option<&str>,
    confirm_publish: bool,
) -> Result<Response, AppError> {
    let principal = page.principal()?;
    let project = directory::visible_project(&page.state.db, principal, style.project_id).await?;
    let second = design.translation.as_ref();
    let second_language = second.map(|texts| texts.language);
    let languages: Vec<Value> = Language::ALL
        .iter()
        .map(|language| {
            json!({ "value": language.as_str(), "label": language.label(), "selected": Some(*language) == second_language })
        })
        .collect();
    let data = json!({
        "style": style,
        "design": design,
        "project": project,
        "second": second.map_or_else(|| json!({ "title": "", "button": "", "footer": "" }), |texts| json!(texts)),
        "fonts": choices(Font::ALL, design.font, Font::as_str, Font::label),
        "placements": choices(Placement::ALL, design.logo_placement, Placement::as_str, Placement::label),
        "languages": languages,
        "warnings": design.contrast_warnings(),
        "error": error,
        "notice": notice,
        "confirm_publish": confirm_publish,
        "can_manage": principal.has_permission(crate::MANAGE),
        "csrf_token": page.csrf_token,
        "max_image": "1 MB",
    });
    let html: Html<String> = page.render(&format!("Style {}", style.name), "payment_page/editor", &data)?;
    Ok(html.into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct EditorQuery {
    #[serde(default)]
    notice: Option<String>,
}

#[handler]
pub async fn editor(
    page: PageContext,
    Path(id): Path<i64>,
    Query(query): Query<EditorQuery>,
) -> Result<Response, AppError> {
    let style = page_styles::view(&page.state, page.principal()?, id).await?;
    editor_page(&page, &style, &style.design, None, notice_text(query.notice.as_deref()), false).await
}

#[handler]
pub async fn save(page: PageContext, Path(id): Path<i64>, Form(form): Form<DesignForm>) -> Result<Response, AppError> {
    let principal = page.principal()?;
    let saved = match form.design() {
        Ok(design) => page_styles::update(&page.state, principal, id, &form.name, design).await,
        Err(error) => Err(error),
    };
    match saved {
        Ok(_) => Ok(see_other(&format!("/payment-page/styles/{id}?notice=saved"))),
        Err(error @ AppError::BadRequest(_)) => {
            let style = page_styles::view(&page.state, principal, id).await?;
            let typed = form.typed(&style.design);
            editor_page(&page, &style, &typed, Some(error.to_string()), None, false).await
        }
        Err(error) => Err(error),
    }
}

/// The image form: a logo or a background, or removing one.
#[handler]
pub async fn upload(page: PageContext, Path(id): Path<i64>, mut form: Multipart) -> Result<Response, AppError> {
    let principal = page.principal()?;
    let (mut slot, mut file, mut remove) = (None, None, false);
    while let Some(field) =
        form.next_field().await.map_err(|e| AppError::BadRequest(format!("The upload could not be read: {e}")))?
    {
        match field.name() {
            Some("slot") => {
                let text = field.text().await.map_err(|e| AppError::BadRequest(e.to_string()))?;
                slot = match text.as_str() {
                    "logo" => Some(ImageSlot::Logo),
                    "background" => Some(ImageSlot::Background),
                    _ => None,
                };
            }
            Some("remove") => remove = true,
            Some("file") => {
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|e| AppError::BadRequest(format!("The file could not be read: {e}")))?;
                file = Some(bytes).filter(|bytes| !bytes.is_empty());
            }
            _ => {}
        }
    }
    let slot = slot.ok_or_else(|| AppError::BadRequest("Say which image this is.".to_owned()))?;
    let done = match (remove, file) {
        (true, _) => page_styles::set_image(&page.state, principal, id, slot, None).await,
        (false, Some(bytes)) => page_styles::set_image(&page.state, principal, id, slot, Some(&bytes)).await,
        (false, None) => Err(AppError::BadRequest("Choose an image file.".to_owned())),
    };
    match done {
        Ok(_) => Ok(see_other(&format!("/payment-page/styles/{id}?notice=image"))),
        Err(error @ (AppError::BadRequest(_) | AppError::Unprocessable(_) | AppError::PayloadTooLarge(_))) => {
            let style = page_styles::view(&page.state, principal, id).await?;
            editor_page(&page, &style, &style.design, Some(error.to_string()), None, false).await
        }
        Err(error) => Err(error),
    }
}

/// The hosted page with test data in `design`, for the preview frames.
async fn preview(
    page: &PageContext,
    req: &Request,
    style: &StyleView,
    design: Design,
    css_url: String,
) -> Result<Response, AppError> {
    let project = directory::visible_project(&page.state.db, page.principal()?, style.project_id).await?;
    let look = Look { design, logo_url: style.logo_url.clone(), background_url: style.background_url.clone(), css_url };
    let subject = Subject {
        link_id: "preview",
        return_url: None,
        merchant: &project.name,
        description: "Order 1042: two tickets",
        price: Some(dashboard_core::money::format_grouped(4990, "EUR")),
        currency: "EUR",
    };
    let language = req.headers().get(header::ACCEPT_LANGUAGE).and_then(|value| value.to_str().ok());
    let html = crate::hosted::render(&page.state, &look, &look.css_url, language, &subject, Shown::Preview, "")?;
    Ok(Response::builder()
        .status(StatusCode::OK)
        .content_type("text/html; charset=utf-8")
        .header(header::CONTENT_SECURITY_POLICY, PREVIEW_POLICY)
        .header(header::X_FRAME_OPTIONS, "SAMEORIGIN")
        .body(html))
}

/// The style sheet of a design carried in the address (the preview of what the form
/// holds, not yet saved).
fn preview_css_url(design: &Design, background: Option<&str>) -> Result<String, AppError> {
    let carried = json!({ "design": design, "background": background });
    let text = serde_json::to_vec(&carried).map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(format!("/payment-page/preview.css?d={}", URL_SAFE_NO_PAD.encode(text)))
}

#[handler]
pub async fn preview_saved(req: &Request, page: PageContext, Path(id): Path<i64>) -> Result<Response, AppError> {
    let (style, design) = page_styles::preview_look(&page.state, page.principal()?, id, None).await?;
    let css = preview_css_url(&design, style.background_url.as_deref())?;
    preview(&page, req, &style, design, css).await
}

#[handler]
pub async fn preview_form(
    req: &Request,
    page: PageContext,
    Path(id): Path<i64>,
    Form(form): Form<DesignForm>,
) -> Result<Response, AppError> {
    let design = form.design()?;
    let (style, design) = page_styles::preview_look(&page.state, page.principal()?, id, Some(design)).await?;
    let css = preview_css_url(&design, style.background_url.as_deref())?;
    preview(&page, req, &style, design, css).await
}

#[derive(Debug, Deserialize)]
pub struct CarriedDesign {
    #[serde(default)]
    d: String,
}

#[derive(Debug, Deserialize)]
struct Carried {
    design: Design,
    background: Option<String>,
}

#[handler]
pub fn preview_css(Query(query): Query<CarriedDesign>) -> Result<Response, AppError> {
    let bad = || AppError::BadRequest("This preview's style could not be read.".to_owned());
    let bytes = URL_SAFE_NO_PAD.decode(query.d.as_bytes()).map_err(|_| bad())?;
    let carried: Carried = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let design = carried.design.checked()?;
    // Only an image address of this dashboard goes into the sheet.
    let background = carried.background.filter(|url| {
        url.strip_prefix("/pay/images/")
            .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    });
    Ok(Response::builder().content_type("text/css; charset=utf-8").body(design.css(background.as_deref())))
}

#[handler]
pub async fn duplicate(page: PageContext, Path(id): Path<i64>) -> Result<Response, AppError> {
    let copy = page_styles::duplicate(&page.state, page.principal()?, id).await?;
    Ok(see_other(&format!("/payment-page/styles/{}", copy.id)))
}

#[handler]
pub async fn delete(page: PageContext, Path(id): Path<i64>) -> Result<Response, AppError> {
    let style = page_styles::view(&page.state, page.principal()?, id).await?;
    page_styles::delete(&page.state, page.principal()?, id).await?;
    Ok(see_other(&format!("/payment-page?project_id={}&notice=deleted", style.project_id)))
}

#[derive(Debug, Default, Deserialize)]
pub struct PublishForm {
    /// The person saw the contrast warnings and publishes anyway.
    #[serde(default)]
    confirmed: Option<String>,
}

#[handler]
pub async fn publish(
    page: PageContext,
    Path(id): Path<i64>,
    Form(form): Form<PublishForm>,
) -> Result<Response, AppError> {
    let principal = page.principal()?;
    let style = page_styles::view(&page.state, principal, id).await?;
    if !style.contrast_warnings.is_empty() && form.confirmed.is_none() {
        return editor_page(&page, &style, &style.design, None, None, true).await;
    }
    page_styles::publish(&page.state, principal, id).await?;
    Ok(see_other(&format!("/payment-page?project_id={}&notice=published", style.project_id)))
}

#[handler]
pub async fn revert(page: PageContext, Path(id): Path<i64>) -> Result<Response, AppError> {
    let version = page_styles::revert(&page.state, page.principal()?, id).await?;
    Ok(see_other(&format!("/payment-page?project_id={}&notice=reverted", version.project_id)))
}

/// The editor's script: the preview follows the form as people edit it.
#[handler]
pub fn script() -> Response {
    Response::builder()
        .content_type("text/javascript; charset=utf-8")
        .header(header::CACHE_CONTROL, "private, max-age=3600")
        .body(include_str!("../assets/designer.js"))
}
