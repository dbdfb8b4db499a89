//! Paging a keyset list back and forth. A list page knows only where it starts (its
//! cursor) and where the next one does; to offer Previous as well, the address carries the
//! cursors of the pages before it (`trail`) and the page's number (`page`), so that every
//! list says "Page 3 · rows 101–150" and links to the first, previous and next page with
//! its filters kept. Nothing is stored on the server: a shared or bookmarked address
//! shows the same page.

use serde::{Deserialize, Serialize};

use crate::auth::urlencode;
use crate::money::group_thousands;

/// How many earlier pages' cursors an address keeps: further back, Previous gives way to
/// First (an address stays well under the lengths browsers and proxies accept).
const TRAIL_KEPT: usize = 30;

/// The trail a list page was asked with (query parameters `trail` and `page`).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Trail {
    /// The cursors of the earlier pages but the first, oldest first, comma separated.
    #[serde(default)]
    trail: Option<String>,
    /// The page's number (1 for the first).
    #[serde(default)]
    page: Option<String>,
}

/// Where a page of a list stands, for the `pager` partial of the theme.
#[derive(Debug, Serialize, PartialEq)]
pub struct Pager {
    /// "Page 2 · rows 51–100", or "No rows" on an empty page.
    pub position: String,
    pub first_url: Option<String>,
    pub previous_url: Option<String>,
    pub next_url: Option<String>,
}

/// A page of a list: what the pager is built from.
pub struct PageOf<'a> {
    /// The list's address with its filters, without cursor or trail (`/team?role=3`).
    pub base: &'a str,
    /// The name of the list's cursor parameter (`after` or `before`).
    pub cursor: &'a str,
    /// This page's cursor (none on the first page).
    pub current: Option<&'a str>,
    /// Where the next page starts, when there is one.
    pub next: Option<&'a str>,
    /// Rows on this page.
    pub shown: usize,
    /// Rows a full page holds.
    pub size: usize,
}

impl Trail {
    /// The earlier pages' cursors (the first page's excluded: it has none), the latest
    /// [`TRAIL_KEPT`].
    fn cursors(&self) -> Vec<&str> {
        let trail = self.trail.as_deref().unwrap_or_default();
        let cursors: Vec<&str> = trail.split(',').map(str::trim).filter(|cursor| !cursor.is_empty()).collect();
        cursors[cursors.len().saturating_sub(TRAIL_KEPT)..].to_vec()
    }

    /// The page's number as the address says, else as the trail counts.
    fn number(&self, on_first: bool, cursors: usize) -> usize {
        if on_first {
            return 1;
        }
        let counted = cursors + 2;
        let said = self.page.as_deref().and_then(|page| page.trim().parse::<usize>().ok());
        said.filter(|&said| said >= counted && said < 1_000_000_000).unwrap_or(counted)
    }

    /// The pager of `page`.
    pub fn pager(&self, page: &PageOf<'_>) -> Pager {
        let base = page.base.strip_suffix('?').unwrap_or(page.base);
        let current = page.current.map(str::trim).filter(|cursor| !cursor.is_empty());
        let cursors = if current.is_some() { self.cursors() } else { Vec::new() };
        let number = self.number(current.is_none(), cursors.len());
        let to = |cursor: &str, trail: &[&str], number: usize| {
            let mut query = format!("{}={}", page.cursor, urlencode(cursor));
            if !trail.is_empty() {
                query.push_str(&format!("&trail={}", urlencode(&trail.join(","))));
            }
            query.push_str(&format!("&page={number}"));
            with_query(base, &query)
        };
        let previous_url = match (current, cursors.split_last()) {
            (None, _) => None,
            (Some(_), None) if number == 2 => Some(base.to_owned()),
            (Some(_), None) => None,
            (Some(_), Some((previous, before))) => Some(to(previous, before, number - 1)),
        };
        // On the second page Previous is the first.
        let first_url = current.filter(|_| number > 2).map(|_| base.to_owned());
        let next_url = page.next.map(|next| {
            let mut trail: Vec<&str> = cursors.clone();
            trail.extend(current);
            let kept = trail.len().saturating_sub(TRAIL_KEPT);
            to(next, &trail[kept..], number + 1)
        });
        Pager { position: position(number, page.shown, page.size), first_url, previous_url, next_url }
    }
}

/// "Page 2 · rows 51–100".
fn position(number: usize, shown: usize, size: usize) -> String {
    if shown == 0 {
        return if number == 1 { "No rows".to_owned() } else { format!("Page {number} · no more rows") };
    }
    let first = (number - 1) * size + 1;
    let last = first + shown - 1;
    format!("Page {number} · rows {}–{}", group_thousands(&first.to_string()), group_thousands(&last.to_string()))
}

/// `base` with `query` added to its own.
fn with_query(base: &str, query: &str) -> String {
    match base.split_once('?') {
        Some((_, "")) => format!("{base}{query}"),
        Some(_) => format!("{base}&{query}"),
        None => format!("{base}?{query}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trail(trail: &str, page: &str) -> Trail {
        Trail { trail: Some(trail.to_owned()), page: Some(page.to_owned()) }
    }

    fn page<'a>(current: Option<&'a str>, next: Option<&'a str>, shown: usize) -> PageOf<'a> {
        PageOf { base: "/team?role=3", cursor: "after", current, next, shown, size: 50 }
    }

    #[test]
    fn paging_forward_then_back_returns_to_each_earlier_page() {
        let first = Trail::default().pager(&page(None, Some("c1"), 50));
        assert_eq!(first.position, "Page 1 · rows 1–50");
        assert_eq!((first.first_url, first.previous_url), (None, None));
        assert_eq!(first.next_url.as_deref(), Some("/team?role=3&after=c1&page=2"));

        let second = trail("", "2").pager(&page(Some("c1"), Some("c2"), 50));
        assert_eq!(second.position, "Page 2 · rows 51–100");
        assert_eq!(second.previous_url.as_deref(), Some("/team?role=3"));
        assert_eq!(second.first_url, None, "Previous is the first page");
        assert_eq!(second.next_url.as_deref(), Some("/team?role=3&after=c2&trail=c1&page=3"));

        let third = trail("c1", "3").pager(&page(Some("c2"), None, 7));
        assert_eq!(third.position, "Page 3 · rows 101–107");
        assert_eq!(third.first_url.as_deref(), Some("/team?role=3"));
        assert_eq!(third.previous_url.as_deref(), Some("/team?role=3&after=c1&page=2"));
        assert_eq!(third.next_url, None);
    }

    #[test]
    fn a_long_trail_is_cut_and_then_offers_first_rather_than_a_wrong_previous() {
        let cursors: Vec<String> = (1..=40).map(|n| format!("c{n}")).collect();
        let deep = trail(&cursors[..39].join(","), "41").pager(&page(Some("c40"), Some("c41"), 50));
        assert_eq!(deep.position, "Page 41 · rows 2,001–2,050");
        let next = deep.next_url.unwrap_or_default();
        assert!(next.contains("page=42") && !next.contains("c1%2C"), "{next}");
        // An address with no trail left says its number but cannot go one back.
        let cut = trail("", "42").pager(&page(Some("c41"), None, 3));
        assert_eq!((cut.position.as_str(), cut.previous_url), ("Page 42 · rows 2,051–2,053", None));
    }

    #[test]
    fn an_empty_list_and_a_made_up_number_read_sensibly() {
        assert_eq!(Trail::default().pager(&page(None, None, 0)).position, "No rows");
        // A page number below what the trail shows is not believed.
        assert_eq!(trail("c1,c2", "1").pager(&page(Some("c3"), None, 1)).position, "Page 4 · rows 151–151");
    }
}
