//! The section's API: the same service functions as its pages.

use dashboard_core::auth::Principal;
use dashboard_core::{ApiResult, AppState};
use dashboard_payments_domain::page_styles::{self, Design, ImageSlot, StyleView, VersionView};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{ApiResponse, Object, OpenApi};

/// A style to create.
#[derive(Debug, Object)]
pub struct NewStyle {
    pub project_id: i64,
    #[oai(validator(min_length = 1, max_length = 80))]
    pub name: String,
    /// None: the default design.
    pub design: Option<Design>,
}

/// A style's draft, as saved.
#[derive(Debug, Object)]
pub struct StyleDraft {
    #[oai(validator(min_length = 1, max_length = 80))]
    pub name: String,
    pub design: Design,
}

#[derive(ApiResponse)]
enum Deleted {
    /// The style is deleted; what customers see has not changed.
    #[oai(status = 204)]
    Done,
}

#[derive(Default)]
pub struct PaymentPageApi;

#[OpenApi(tag = "PaymentPageTag::PaymentPage")]
impl PaymentPageApi {
    /// The Payment Page styles of the projects the caller may see
    #[oai(path = "/payment-page/styles", method = "get", operation_id = "payment_page_styles_list")]
    async fn list(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        /// Only this project's styles.
        project_id: Query<Option<i64>>,
    ) -> ApiResult<Json<Vec<StyleView>>> {
        Ok(Json(page_styles::list(&state, principal, project_id.0).await?))
    }

    /// Create a style (a draft)
    #[oai(path = "/payment-page/styles", method = "post", operation_id = "payment_page_styles_create")]
    async fn create(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        body: Json<NewStyle>,
    ) -> ApiResult<Json<StyleView>> {
        let NewStyle { project_id, name, design } = body.0;
        Ok(Json(page_styles::create(&state, principal, project_id, &name, design).await?))
    }

    /// A style, with its colour pairs below WCAG AA contrast
    #[oai(path = "/payment-page/styles/:id", method = "get", operation_id = "payment_page_styles_get")]
    async fn get(&self, state: Data<&AppState>, principal: &Principal, id: Path<i64>) -> ApiResult<Json<StyleView>> {
        Ok(Json(page_styles::view(&state, principal, id.0).await?))
    }

    /// Save a style's draft
    #[oai(path = "/payment-page/styles/:id", method = "put", operation_id = "payment_page_styles_update")]
    async fn update(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: Path<i64>,
        body: Json<StyleDraft>,
    ) -> ApiResult<Json<StyleView>> {
        let StyleDraft { name, design } = body.0;
        Ok(Json(page_styles::update(&state, principal, id.0, &name, design).await?))
    }

    /// Delete a style (its published versions stay)
    #[oai(path = "/payment-page/styles/:id", method = "delete", operation_id = "payment_page_styles_delete")]
    async fn delete(&self, state: Data<&AppState>, principal: &Principal, id: Path<i64>) -> ApiResult<Deleted> {
        page_styles::delete(&state, principal, id.0).await?;
        Ok(Deleted::Done)
    }

    /// Set a style's logo
    ///
    /// The body is the image itself: PNG, JPEG or WebP (told by its content, never SVG), up
    /// to 1 MB. It is decoded, scaled to fit 800×400 and stored as PNG.
    #[oai(path = "/payment-page/styles/:id/logo", method = "put", operation_id = "payment_page_styles_set_logo")]
    async fn set_logo(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: Path<i64>,
        body: Binary<Vec<u8>>,
    ) -> ApiResult<Json<StyleView>> {
        Ok(Json(page_styles::set_image(&state, principal, id.0, ImageSlot::Logo, Some(&body)).await?))
    }

    /// Remove a style's logo
    #[oai(path = "/payment-page/styles/:id/logo", method = "delete", operation_id = "payment_page_styles_remove_logo")]
    async fn remove_logo(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: Path<i64>,
    ) -> ApiResult<Json<StyleView>> {
        Ok(Json(page_styles::set_image(&state, principal, id.0, ImageSlot::Logo, None).await?))
    }

    /// Set a style's background image
    ///
    /// The body is the image itself: PNG, JPEG or WebP (never SVG), up to 1 MB. It is
    /// decoded, scaled to fit 1600×1600 and stored as JPEG.
    #[oai(
        path = "/payment-page/styles/:id/background",
        method = "put",
        operation_id = "payment_page_styles_set_background"
    )]
    async fn set_background(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: Path<i64>,
        body: Binary<Vec<u8>>,
    ) -> ApiResult<Json<StyleView>> {
        Ok(Json(page_styles::set_image(&state, principal, id.0, ImageSlot::Background, Some(&body)).await?))
    }

    /// Remove a style's background image
    #[oai(
        path = "/payment-page/styles/:id/background",
        method = "delete",
        operation_id = "payment_page_styles_remove_background"
    )]
    async fn remove_background(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: Path<i64>,
    ) -> ApiResult<Json<StyleView>> {
        Ok(Json(page_styles::set_image(&state, principal, id.0, ImageSlot::Background, None).await?))
    }

    /// Copy a style under a new name
    #[oai(path = "/payment-page/styles/:id/duplicate", method = "post", operation_id = "payment_page_styles_duplicate")]
    async fn duplicate(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: Path<i64>,
    ) -> ApiResult<Json<StyleView>> {
        Ok(Json(page_styles::duplicate(&state, principal, id.0).await?))
    }

    /// Publish a style's saved draft: its project's customers see it at once
    ///
    /// Colour pairs below WCAG AA contrast do not stop it: read the style's
    /// `contrast_warnings` first.
    #[oai(path = "/payment-page/styles/:id/publication", method = "post", operation_id = "payment_page_styles_publish")]
    async fn publish(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: Path<i64>,
    ) -> ApiResult<Json<VersionView>> {
        Ok(Json(page_styles::publish(&state, principal, id.0).await?))
    }

    /// A project's published versions, newest first
    #[oai(path = "/payment-page/versions", method = "get", operation_id = "payment_page_versions_list")]
    async fn versions(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        project_id: Query<i64>,
    ) -> ApiResult<Json<Vec<VersionView>>> {
        Ok(Json(page_styles::versions(&state, principal, project_id.0).await?))
    }

    /// Publish an earlier version again (as a new version)
    #[oai(path = "/payment-page/versions/:id/revert", method = "post", operation_id = "payment_page_versions_revert")]
    async fn revert(
        &self,
        state: Data<&AppState>,
        principal: &Principal,
        id: Path<i64>,
    ) -> ApiResult<Json<VersionView>> {
        Ok(Json(page_styles::revert(&state, principal, id.0).await?))
    }
}

#[derive(poem_openapi::Tags)]
enum PaymentPageTag {
    /// The hosted Payment Page's styles: drafts, publication, versions.
    PaymentPage,
}
