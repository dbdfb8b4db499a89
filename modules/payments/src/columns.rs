//! The registry's columns, chosen by each user and saved with their preferences. The
//! payment id is always shown (it opens the payment); the others can be hidden.

use dashboard_core::{AppError, AppState, Principal, preferences};
use serde_json::{Map, Value};

/// The columns a user may show: (key, heading), in the table's order.
pub const COLUMNS: &[(&str, &str)] = &[
    ("created", "Created"),
    ("order", "Order id"),
    ("project", "Project"),
    ("type", "Type"),
    ("method", "Method"),
    ("amount", "Amount"),
    ("status", "Status"),
    ("customer", "Customer"),
    ("country", "Country"),
    ("card", "Card"),
];

/// What a user sees until they choose.
const DEFAULT: &[&str] = &["created", "order", "project", "amount", "status", "customer", "card"];

const PREFERENCE: &str = "payments.columns";

/// The user's columns, in the table's order (their saved choice, else the default).
pub async fn chosen(state: &AppState, principal: &Principal) -> Result<Vec<String>, AppError> {
    let saved: Option<Vec<String>> = preferences::get(state, principal.user_id, PREFERENCE).await?;
    let wanted = saved.unwrap_or_else(|| DEFAULT.iter().map(|c| (*c).to_owned()).collect());
    Ok(in_table_order(&wanted))
}

/// Saves the user's choice of columns; unknown names and an empty choice are refused.
pub async fn choose(state: &AppState, principal: &Principal, wanted: &[String]) -> Result<Vec<String>, AppError> {
    if let Some(unknown) = wanted.iter().find(|w| !COLUMNS.iter().any(|(key, _)| key == w)) {
        let known: Vec<&str> = COLUMNS.iter().map(|(key, _)| *key).collect();
        return Err(AppError::BadRequest(format!(
            "There is no column {unknown:?}; the columns are {}.",
            known.join(", ")
        )));
    }
    if wanted.is_empty() {
        return Err(AppError::BadRequest("Choose at least one column.".to_owned()));
    }
    let columns = in_table_order(wanted);
    preferences::set(state, principal.user_id, PREFERENCE, &columns).await?;
    Ok(columns)
}

fn in_table_order(wanted: &[String]) -> Vec<String> {
    COLUMNS.iter().filter(|(key, _)| wanted.iter().any(|w| w == key)).map(|(key, _)| (*key).to_owned()).collect()
}

/// `{ key: shown }` for the template, and the choices of the column menu.
pub fn template_data(columns: &[String]) -> (Value, Vec<Value>) {
    let shown: Map<String, Value> =
        COLUMNS.iter().map(|(key, _)| ((*key).to_owned(), Value::Bool(columns.iter().any(|c| c == key)))).collect();
    let choices = COLUMNS
        .iter()
        .map(|(key, label)| serde_json::json!({ "key": key, "label": label, "checked": shown[*key] }))
        .collect();
    (Value::Object(shown), choices)
}
