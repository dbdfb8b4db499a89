//! A link's QR code, as SVG: one path of dark squares on a white square with the quiet
//! zone the standard asks for.

use qrcodegen::{QrCode, QrCodeEcc};

/// The SVG of a QR code holding `text`, labelled `label` for screen readers.
pub fn svg(text: &str, label: &str) -> String {
    const QUIET: i32 = 4;
    let Ok(code) = QrCode::encode_text(text, QrCodeEcc::Medium) else {
        return String::new();
    };
    let size = code.size();
    let mut path = String::new();
    for y in 0..size {
        for x in 0..size {
            if code.get_module(x, y) {
                path.push_str(&format!("M{},{}h1v1h-1z", x + QUIET, y + QUIET));
            }
        }
    }
    let side = size + 2 * QUIET;
    let label = label.replace('&', "&amp;").replace('<', "&lt;").replace('"', "&quot;");
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {side} {side}\" role=\"img\" aria-label=\"{label}\" \
         shape-rendering=\"crispEdges\"><rect width=\"{side}\" height=\"{side}\" fill=\"#fff\"/>\
         <path d=\"{path}\" fill=\"#000\"/></svg>"
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_code_is_a_square_with_its_quiet_zone() {
        let svg = super::svg("https://pay.example/pay/lnk_0123456789abcdef0123", "QR code");
        // 33 modules (version 4) and 4 on each side.
        assert!(svg.contains("viewBox=\"0 0 41 41\""), "{svg}");
        assert!(svg.contains("M4,4h1v1h-1z"), "the finder pattern's corner is dark");
    }
}
