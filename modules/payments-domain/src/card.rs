//! Card data. The full number and the CVV exist only in memory, for the connector call:
//! they are never stored or logged (their `Debug` shows the last four digits at most).
//! What is stored: first 6, last 4, brand, expiry and a keyed fingerprint.

use std::fmt;

use dashboard_core::crypto::SecretBox;
use dashboard_core::error::AppError;

/// A card number, digits only; printing it shows only the last four digits.
#[derive(Clone, PartialEq, Eq)]
pub struct CardNumber(String);

impl fmt::Debug for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardNumber(••••{})", self.last4())
    }
}

impl CardNumber {
    /// Accepts 12 to 19 digits (spaces and dashes ignored) that pass the Luhn check.
    pub fn parse(text: &str) -> Result<CardNumber, AppError> {
        let digits: String = text.chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
        if !(12..=19).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) || !luhn_valid(&digits) {
            return Err(AppError::BadRequest("The card number is not valid.".to_owned()));
        }
        Ok(CardNumber(digits))
    }

    pub fn digits(&self) -> &str {
        &self.0
    }

    /// The leading digits that may be shown and stored (PCI DSS): the first six, fewer
    /// for a number of under 16 digits, so that at least six digits always stay hidden
    /// (a 12-digit number shows 2 + 4).
    pub fn first_digits(&self) -> &str {
        &self.0[..self.0.len().saturating_sub(10).min(6)]
    }

    pub fn last4(&self) -> &str {
        &self.0[self.0.len() - 4..]
    }

    /// The card scheme by its leading digits.
    pub fn brand(&self) -> &'static str {
        let prefix2: u32 = self.0[..2].parse().unwrap_or(0);
        let prefix4: u32 = self.0[..4].parse().unwrap_or(0);
        match (self.0.as_bytes()[0], prefix2, prefix4) {
            (b'4', _, _) => "visa",
            (_, 51..=55, _) | (_, _, 2221..=2720) => "mastercard",
            (_, 34 | 37, _) => "amex",
            (_, 65, _) | (_, _, 6011) => "discover",
            (_, 35, _) => "jcb",
            (_, 62, _) => "unionpay",
            _ => "card",
        }
    }
}

dashboard_core::register!(dashboard_core::labels::LabelSet {
    name: "card_brand",
    labels: || {
        vec![
            ("visa", "Visa"),
            ("mastercard", "Mastercard"),
            ("amex", "American Express"),
            ("discover", "Discover"),
            ("jcb", "JCB"),
            ("unionpay", "UnionPay"),
            ("card", "Card"),
        ]
    },
});

// Where a column is narrow (the registry).
dashboard_core::register!(dashboard_core::labels::LabelSet {
    name: "card_brand_short",
    labels: || {
        vec![
            ("visa", "Visa"),
            ("mastercard", "Mastercard"),
            ("amex", "Amex"),
            ("discover", "Discover"),
            ("jcb", "JCB"),
            ("unionpay", "UnionPay"),
            ("card", "Card"),
        ]
    },
});

/// Whether free text holds a card number: 13 to 19 digits (single spaces or dashes
/// between them allowed) with a scheme's leading digits and a valid check digit. Such
/// text would store and export a card number in the clear.
pub fn holds_card_number(text: &str) -> bool {
    let mut run = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let joins_digits = (c == ' ' || c == '-') && !run.is_empty() && chars.peek().is_some_and(char::is_ascii_digit);
        if c.is_ascii_digit() {
            run.push(c);
        } else if !joins_digits {
            if looks_like_card(&run) {
                return true;
            }
            run.clear();
        }
    }
    looks_like_card(&run)
}

fn looks_like_card(digits: &str) -> bool {
    (13..=19).contains(&digits.len()) && CardNumber::parse(digits).is_ok_and(|card| card.brand() != "card")
}

/// The Luhn (mod 10) check digit test.
pub fn luhn_valid(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Everything the acquirer needs about a card, for one call.
#[derive(Clone)]
pub struct Card {
    pub number: CardNumber,
    pub expiry_month: u32,
    pub expiry_year: u32,
    cvv: String,
    pub holder: Option<String>,
}

impl fmt::Debug for Card {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Card").field("number", &self.number).field("expiry", &self.expiry()).finish_non_exhaustive()
    }
}

impl Card {
    /// Checks number, expiry (`MM`, `YYYY`, not in the past) and CVV (3 or 4 digits).
    pub fn parse(
        number: &str,
        expiry_month: u32,
        expiry_year: u32,
        cvv: &str,
        holder: Option<String>,
    ) -> Result<Card, AppError> {
        let number = CardNumber::parse(number)?;
        if !(1..=12).contains(&expiry_month) || !(2000..=2100).contains(&expiry_year) {
            return Err(AppError::BadRequest("The card expiry must be a month 1–12 and a four-digit year.".to_owned()));
        }
        let today = dashboard_core::time::now().date();
        let (year, month) = (i64::from(expiry_year), i64::from(expiry_month));
        let this_month = i64::from(chrono::Datelike::year(&today)) * 12 + i64::from(chrono::Datelike::month(&today));
        if year * 12 + month < this_month {
            return Err(AppError::BadRequest("The card has expired.".to_owned()));
        }
        if !(3..=4).contains(&cvv.len()) || !cvv.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AppError::BadRequest("The card security code must be 3 or 4 digits.".to_owned()));
        }
        Ok(Card { number, expiry_month, expiry_year, cvv: cvv.to_owned(), holder })
    }

    /// A card money is sent to (a payout: an original credit needs no security code), as
    /// a batch file lists it.
    pub fn payee(number: &str, expiry_month: u32, expiry_year: u32, holder: Option<String>) -> Result<Card, AppError> {
        let mut card = Card::parse(number, expiry_month, expiry_year, "000", holder)?;
        card.cvv.clear();
        Ok(card)
    }

    /// `MM/YY`, as stored and shown.
    pub fn expiry(&self) -> String {
        format!("{:02}/{:02}", self.expiry_month, self.expiry_year % 100)
    }

    /// The security code, for the acquirer call only.
    pub fn cvv(&self) -> &str {
        &self.cvv
    }

    /// Keyed fingerprint of the card number: equal cards match, the number stays unknown.
    pub fn fingerprint(&self, secrets: &SecretBox) -> String {
        secrets.fingerprint(self.number.digits().as_bytes())
    }
}

/// Card details as a request carries them: used for this call only, never stored (only
/// the first and last digits, brand and expiry are kept).
#[derive(poem_openapi::Object, serde::Serialize)]
#[oai(skip_serializing_if_is_none)]
pub struct CardInput {
    pub number: String,
    pub expiry_month: u32,
    /// Four digits.
    pub expiry_year: u32,
    pub cvv: String,
    pub holder: Option<String>,
}

impl CardInput {
    pub fn card(&self) -> Result<Card, AppError> {
        Card::parse(&self.number, self.expiry_month, self.expiry_year, &self.cvv, self.holder.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_numbers_are_found_in_free_text() {
        for text in ["4242424242424242", "order 4242 4242 4242 4242", "pay 4000-0000-0000-0002 now", "378282246310005"]
        {
            assert!(holds_card_number(text), "{text}");
        }
        // Order numbers, dates and amounts are not cards: no scheme prefix, no check
        // digit, too short, or separated by more than single spaces or dashes.
        for text in ["2026112900000000001", "4242424242424241", "424242424242", "4242  4242  4242  4242", "A-1234"] {
            assert!(!holds_card_number(text), "{text}");
        }
    }

    #[test]
    fn short_numbers_keep_six_digits_hidden() {
        let shown = |text: &str| {
            let number = CardNumber::parse(text).expect("valid");
            (number.first_digits().to_owned(), number.last4().to_owned())
        };
        assert_eq!(shown("424242424242"), ("42".to_owned(), "4242".to_owned()), "12 digits: 2 + 4 shown");
        assert_eq!(shown("378282246310005"), ("37828".to_owned(), "0005".to_owned()), "15 digits: 5 + 4");
        assert_eq!(shown("4242424242424242").0, "424242", "16 digits: the BIN");
    }

    #[test]
    fn numbers_are_checked_and_never_printed() {
        let number = CardNumber::parse("4242 4242 4242 4242").expect("valid");
        assert_eq!((number.first_digits(), number.last4(), number.brand()), ("424242", "4242", "visa"));
        assert_eq!(format!("{number:?}"), "CardNumber(••••4242)");
        assert!(CardNumber::parse("4242 4242 4242 4241").is_err(), "Luhn");
        assert!(CardNumber::parse("4242").is_err());
        assert_eq!(CardNumber::parse("5555555555554444").expect("valid").brand(), "mastercard");
        assert_eq!(CardNumber::parse("378282246310005").expect("valid").brand(), "amex");
        let card = Card::parse("4242424242424242", 12, 2099, "123", None).expect("valid");
        let printed = format!("{card:?}");
        assert!(!printed.contains("424242424242") && !printed.contains("123"), "{printed}");
        assert!(Card::parse("4242424242424242", 1, 2020, "123", None).is_err(), "expired");
        assert!(Card::parse("4242424242424242", 12, 2099, "12", None).is_err(), "cvv");
    }
}
