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

/// `12345, "EUR"` → `123.45 EUR`; `5000, "JPY"` → `5000 JPY`.
pub fn format_minor(amount_minor: i64, currency: &str) -> String {
    let currency = currency.to_ascii_uppercase();
    let digits = exponent(&currency);
    if digits == 0 {
        return format!("{amount_minor} {currency}");
    }
    let scale = 10_i64.pow(digits);
    let sign = if amount_minor < 0 { "-" } else { "" };
    let magnitude = amount_minor.unsigned_abs();
    let (whole, fraction) = (magnitude / scale.unsigned_abs(), magnitude % scale.unsigned_abs());
    format!("{sign}{whole}.{fraction:0width$} {currency}", width = digits as usize)
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
}
