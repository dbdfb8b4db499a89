//! Labels for people: the one table that turns a stored value (`partially_refunded`,
//! `acquirer_receivable`, `second_factor.reset`) into what a person reads ("Partly
//! refunded", "Acquirer receivable", "Second factor reset"). The crate that owns a set of
//! values registers its labels (`register!(LabelSet { .. })`); pages use
//! `{{human "set" value}}`, exports and forms [`label`].

use std::collections::HashMap;
use std::sync::OnceLock;

/// The labels of one set of values (an enum, the ledger's accounts, …).
pub struct LabelSet {
    /// What templates name it by, e.g. `payment_status`.
    pub name: &'static str,
    /// `(stored value, label)` for every value of the set.
    pub labels: fn() -> Vec<(&'static str, &'static str)>,
}

inventory::collect!(LabelSet);

type Table = HashMap<&'static str, HashMap<&'static str, &'static str>>;

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table: Table = HashMap::new();
        for set in inventory::iter::<LabelSet> {
            table.entry(set.name).or_default().extend((set.labels)());
        }
        table
    })
}

/// The label of `value` in `set`, or `None` when the set does not know it.
pub fn find(set: &str, value: &str) -> Option<&'static str> {
    table().get(set)?.get(value).copied()
}

/// The label of `value` in `set`; a value the set does not know is shown readably
/// (`second_factor.reset` as "Second factor reset") rather than as it is stored.
pub fn label(set: &str, value: &str) -> String {
    match find(set, value) {
        Some(label) => label.to_owned(),
        None => readable(value),
    }
}

/// `second_factor.reset` → "Second factor reset".
pub fn readable(value: &str) -> String {
    let words = value.replace(['_', '.', '-'], " ");
    let mut chars = words.trim().chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::readable;

    #[test]
    fn unknown_values_read_as_words() {
        assert_eq!(readable("second_factor.reset"), "Second factor reset");
        assert_eq!(readable("payments.export"), "Payments export");
        assert_eq!(readable(""), "");
    }
}
