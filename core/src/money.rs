//! Money is integer minor units of an ISO 4217 currency, never floating point.

/// Digits after the decimal point of `currency` (ISO 4217); 2 unless listed.
pub fn exponent(currency: &str) -> u32 {
    match currency.to_ascii_uppercase().as_str() {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX" | "UYI" | "VND"
        | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        "CLF" | "UYW" => 4,
        _ => 2,
    }
}

/// Currencies the dashboard accepts (ISO 4217).
pub const CURRENCIES: &[&str] = &[
    "AED", "AUD", "BGN", "BHD", "BRL", "CAD", "CHF", "CLP", "CNY", "CZK", "DKK", "EUR", "GBP", "HKD", "HUF", "IDR",
    "ILS", "INR", "ISK", "JOD", "JPY", "KRW", "KWD", "MXN", "MYR", "NOK", "NZD", "OMR", "PHP", "PLN", "RON", "SAR",
    "SEK", "SGD", "THB", "TND", "TRY", "UAH", "USD", "VND", "ZAR",
];

/// The pattern the API's documents give a currency field: exactly the supported codes.
pub fn currency_pattern() -> String {
    format!("^({})$", CURRENCIES.join("|"))
}

pub fn known(currency: &str) -> bool {
    CURRENCIES.contains(&currency)
}

/// Parses a decimal amount (`"12.34"`) into minor units of `currency`; refuses more
/// decimals than the currency has.
pub fn parse_amount(text: &str, currency: &str) -> Option<i64> {
    let text = text.trim();
    let digits = exponent(currency) as usize;
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if fraction.len() > digits || (digits == 0 && text.contains('.')) {
        return None;
    }
    let scale = 10_i64.checked_pow(digits as u32)?;
    let whole: i64 = whole.parse().ok()?;
    let fraction: i64 = if fraction.is_empty() { 0 } else { format!("{fraction:0<digits$}").parse().ok()? };
    whole.checked_mul(scale)?.checked_add(fraction)
}

/// `12345, "EUR"` → `123.45 EUR`; `5000, "JPY"` → `5000 JPY`.
pub fn format_minor(amount_minor: i64, currency: &str) -> String {
    format!("{} {}", format_decimal(amount_minor, currency), currency.to_ascii_uppercase())
}

/// `125000, "EUR"` → `1,250.00 EUR`: thousands grouped, for text people read (an SMS,
/// a chart); tables and files keep [`format_minor`].
pub fn format_grouped(amount_minor: i64, currency: &str) -> String {
    format!("{} {}", group_thousands(&format_decimal(amount_minor, currency)), currency.to_ascii_uppercase())
}

/// `1234567.89` as `1,234,567.89`.
pub fn group_thousands(number: &str) -> String {
    let (sign, rest) = number.strip_prefix('-').map_or(("", number), |rest| ("-", rest));
    let (whole, fraction) = rest.split_once('.').map_or((rest, None), |(w, f)| (w, Some(f)));
    let mut grouped = String::new();
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    match fraction {
        Some(fraction) => format!("{sign}{grouped}.{fraction}"),
        None => format!("{sign}{grouped}"),
    }
}

/// `12345, "EUR"` → `123.45`: the amount alone, with the currency's decimals.
pub fn format_decimal(amount_minor: i64, currency: &str) -> String {
    let digits = exponent(currency);
    if digits == 0 {
        return amount_minor.to_string();
    }
    let scale = 10_u64.pow(digits);
    let sign = if amount_minor < 0 { "-" } else { "" };
    let magnitude = amount_minor.unsigned_abs();
    format!("{sign}{}.{:0width$}", magnitude / scale, magnitude % scale, width = digits as usize)
}

#[cfg(test)]
mod tests {
    use super::format_minor;

    #[test]
    fn amounts_follow_the_currency_exponent() {
        assert_eq!(format_minor(12_345, "eur"), "123.45 EUR");
        assert_eq!(format_minor(5, "USD"), "0.05 USD");
        assert_eq!(format_minor(-150, "GBP"), "-1.50 GBP");
        assert_eq!(format_minor(5_000, "JPY"), "5000 JPY");
        assert_eq!(format_minor(1_234, "BHD"), "1.234 BHD");
    }

    #[test]
    fn grouped_amounts_separate_thousands() {
        use super::format_grouped;
        assert_eq!(format_grouped(125_000, "eur"), "1,250.00 EUR");
        assert_eq!(format_grouped(12_345, "EUR"), "123.45 EUR");
        assert_eq!(format_grouped(-123_456_789, "USD"), "-1,234,567.89 USD");
        assert_eq!(format_grouped(3_120, "JPY"), "3,120 JPY");
        assert_eq!(format_grouped(100_000, "JPY"), "100,000 JPY");
    }

    #[test]
    fn decimal_amounts_parse_by_the_currency_exponent() {
        use super::parse_amount;
        assert_eq!(parse_amount("12.34", "EUR"), Some(1234));
        assert_eq!(parse_amount("12.3", "EUR"), Some(1230));
        assert_eq!(parse_amount("12", "EUR"), Some(1200));
        assert_eq!(parse_amount("12.345", "EUR"), None, "too many decimals");
        assert_eq!(parse_amount("500", "JPY"), Some(500));
        assert_eq!(parse_amount("500.0", "JPY"), None);
        assert_eq!(parse_amount("1.234", "BHD"), Some(1234));
        assert_eq!(parse_amount("-1", "EUR"), None);
        assert_eq!(parse_amount("abc", "EUR"), None);
    }
}
