//! How the values of the dimensions read for people.

use std::collections::HashMap;

use dashboard_core::auth::Principal;
use dashboard_core::{AppError, AppState, directory, labels};

use crate::measures::Dimension;

/// The names of the projects the caller may see, by id.
pub async fn project_names(state: &AppState, principal: &Principal) -> Result<HashMap<String, String>, AppError> {
    Ok(directory::visible_projects(&state.db, principal)
        .await?
        .into_iter()
        .map(|p| (p.id.to_string(), p.name))
        .collect())
}

/// `value` of `dimension` for people.
pub fn label(dimension: Dimension, value: &str, projects: &HashMap<String, String>) -> String {
    if value.is_empty() {
        return match dimension {
            Dimension::Decline => "Not declined".to_owned(),
            _ => "Unknown".to_owned(),
        };
    }
    match dimension {
        Dimension::Project => projects.get(value).cloned().unwrap_or_else(|| format!("Project {value}")),
        Dimension::Country | Dimension::Currency | Dimension::Decline => value.to_owned(),
        Dimension::Brand => labels::label("card_brand", value),
        Dimension::Method => labels::label("payment_method", value),
        Dimension::Status => labels::label("payment_status", value),
    }
}
