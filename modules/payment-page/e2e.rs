//! The Payment Page designer: styles are drafts until published; customers see the
//! published version (its colours, logo and texts in their browser's language); every
//! publication is kept and can be published again; images are checked by decoding them;
//! the preview is the real page and only the designer may frame it.

use dashboard_core::BuiltinRole;
use dashboard_tests::reqwest::StatusCode;
use dashboard_tests::{TestApp, story};
use serde_json::{Value, json};

fn png(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    image::RgbaImage::from_pixel(width, height, image::Rgba([200, 30, 40, 255]))
        .write_to(&mut bytes, image::ImageFormat::Png)
        .unwrap();
    bytes.into_inner()
}

async fn put_image(app: &TestApp, style: i64, slot: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
    let path = format!("/api/v1/payment-page/styles/{style}/{slot}");
    let request = app.client.put(app.url(&path)).header("Content-Type", "application/octet-stream").body(bytes);
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn design(primary: &str, text: &str) -> Value {
    json!({
        "colors": { "background": "#fdf6e3", "surface": "#ffffff", "text": text, "primary": primary,
                    "link": "#0b5394", "error": "#a61c00" },
        "font": "georgia", "corner_radius": 14, "logo_placement": "center",
        "texts": { "title": "Pay Acme", "button": "Pay now", "footer": "Acme Ltd, 1 Main St" },
        "translation": { "language": "de", "title": "Bezahlen bei Acme", "button": "Jetzt bezahlen", "footer": "Acme GmbH" },
    })
}

story!(a_style_is_designed_published_and_shown_to_customers_and_an_earlier_one_comes_back);
async fn a_style_is_designed_published_and_shown_to_customers_and_an_earlier_one_comes_back(app: TestApp) {
    let (company, projects) = app.company("Acme", &["Shop"]).await;
    app.sign_in_with_second_factor(company, "rita", BuiltinRole::MerchantAdmin).await;
    let project = projects[0];
    let response = app
        .client
        .post(app.url("/api/v1/payment-page/styles"))
        .json(&json!({ "project_id": project, "name": "Autumn", "design": design("#7a1f5c", "#222222") }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let style: Value = response.json().await.unwrap();
    let id = style["id"].as_i64().unwrap();
    assert_eq!(style["contrast_warnings"], json!([]));

    // Images: decoded, never SVG, at most 1 MB; a logo is scaled to fit.
    let svg = br#"<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect width="9" height="9"/></svg>"#;
    let (status, problem) = put_image(&app, id, "logo", svg.to_vec()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(problem.to_string().contains("SVG is not accepted"), "{problem}");
    let (status, _) = put_image(&app, id, "logo", b"%PDF-1.4 not an image".to_vec()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let mut huge = png(10, 10);
    huge.resize(10 * 1024 * 1024, 0);
    let (status, _) = put_image(&app, id, "logo", huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, with_logo) = put_image(&app, id, "logo", png(1_600, 400)).await;
    assert_eq!(status, StatusCode::OK, "{with_logo}");
    let logo_url = with_logo["logo_url"].as_str().unwrap().to_owned();

    // Nothing is published yet: customers see the default look.
    let link: Value = app
        .client
        .post(app.url("/api/v1/payment-links"))
        .json(&json!({ "project_id": project, "currency": "EUR", "amount": 2_500, "description": "A scarf" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pay_path = format!("/pay/{}", link["id"].as_str().unwrap());
    let customer = app.another_browser();
    let (_, page) = customer.get_text(&pay_path).await;
    assert!(page.contains("/pay/looks/default.css") && !page.contains(&logo_url), "{page}");

    // Published: its colours, logo and texts, German for a German browser.
    let published: Value = app
        .client
        .post(app.url(&format!("/api/v1/payment-page/styles/{id}/publication")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((published["version"].as_i64(), published["current"].as_bool()), (Some(1), Some(true)));
    let (_, page) = customer.get_text(&pay_path).await;
    assert!(page.contains(&logo_url) && page.contains("Pay now"), "{page}");
    let css_path = format!("/pay/looks/{}.css", published["id"]);
    assert!(page.contains(&css_path), "{page}");
    let css = customer.get(&css_path).await;
    assert!(css.headers()["cache-control"].to_str().unwrap().contains("immutable"));
    let css = css.text().await.unwrap();
    assert!(css.contains("--pp-primary:#7a1f5c") && css.contains("Georgia") && css.contains("--pp-radius:14px"));
    let logo = customer.get(&logo_url).await;
    assert_eq!(logo.headers()["content-type"], "image/png");
    let logo = image::load_from_memory(&logo.bytes().await.unwrap()).unwrap();
    assert_eq!((logo.width(), logo.height()), (800, 200), "scaled to fit 800×400");
    let german = customer.client.get(customer.url(&pay_path)).header("Accept-Language", "de-DE,de;q=0.9").send();
    let german = german.await.unwrap().text().await.unwrap();
    assert!(german.contains("Jetzt bezahlen") && german.contains("lang=\"de\"") && german.contains("Kartennummer"));

    // A draft change is not seen until published; pale text is warned about.
    let update = json!({ "name": "Autumn, pale", "design": design("#7a1f5c", "#c8c8c8") });
    let saved: Value =
        app.client.put(app.url(&format!("/api/v1/payment-page/styles/{id}"))).json(&update).send().await.unwrap().json().await.unwrap();
    assert_eq!(saved["contrast_warnings"].as_array().unwrap().len(), 2, "{saved}");
    assert!(customer.get(&css_path).await.text().await.unwrap().contains("--pp-text:#222222"));
    let second: Value = app
        .client
        .post(app.url(&format!("/api/v1/payment-page/styles/{id}/publication")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(second["version"], 2);
    let (_, page) = customer.get_text(&pay_path).await;
    assert!(page.contains(&format!("/pay/looks/{}.css", second["id"])));

    // Version 1 comes back as version 3; the history keeps all three.
    let reverted: Value = app
        .client
        .post(app.url(&format!("/api/v1/payment-page/versions/{}/revert", published["id"])))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((reverted["version"].as_i64(), reverted["reverted_from"].as_i64()), (Some(3), Some(1)));
    let history: Value = app.get(&format!("/api/v1/payment-page/versions?project_id={project}")).await.json().await.unwrap();
    let versions: Vec<(i64, bool)> =
        history.as_array().unwrap().iter().map(|v| (v["version"].as_i64().unwrap(), v["current"].as_bool().unwrap())).collect();
    assert_eq!(versions, [(3, true), (2, false), (1, false)]);
    let (_, page) = customer.get_text(&pay_path).await;
    let css = customer.get(&format!("/pay/looks/{}.css", reverted["id"])).await.text().await.unwrap();
    assert!(page.contains(&format!("/pay/looks/{}.css", reverted["id"])) && css.contains("--pp-text:#222222"));

    // Deleting the style leaves what customers see.
    let deleted = app.client.delete(app.url(&format!("/api/v1/payment-page/styles/{id}"))).send().await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let (_, page) = customer.get_text(&pay_path).await;
    assert!(page.contains(&format!("/pay/looks/{}.css", reverted["id"])));
    let audit: Vec<String> = dashboard_tests::query!(app, conn => {
        use dashboard_core::schema::audit_events;
        audit_events::table.filter(audit_events::action.like("payment_page.%")).order(audit_events::id.asc()).select(audit_events::action).load(conn).await
    });
    assert_eq!(
        audit,
        [
            "payment_page.style_create",
            "payment_page.style_image",
            "payment_page.publish",
            "payment_page.style_update",
            "payment_page.publish",
            "payment_page.publish",
            "payment_page.style_delete",
        ]
    );
}

story!(the_designer_previews_the_real_page_and_keeps_styles_to_their_company);
async fn the_designer_previews_the_real_page_and_keeps_styles_to_their_company(app: TestApp) {
    let (company, projects) = app.company("Acme", &["Shop"]).await;
    app.sign_in_with_second_factor(company, "olivia", BuiltinRole::Operations).await;
    let (status, index) = app.get_text(&format!("/payment-page?project_id={}", projects[0])).await;
    assert_eq!(status, StatusCode::OK);
    let csrf = dashboard_tests::form_value(&index, "csrf_token").unwrap();
    let project = projects[0].to_string();
    let created = app.post_form("/payment-page/styles", &[("csrf_token", &csrf), ("project_id", &project), ("name", "Plain")]).await;
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    let editor_path = dashboard_tests::location(created.headers());
    let (status, editor) = app.get_text(&editor_path).await;
    assert_eq!(status, StatusCode::OK);
    assert!(editor.contains("<iframe name=\"preview-desktop\"") && editor.contains("Preview on a phone"));

    // The preview of what the form holds, unsaved: the real page, framed by the designer only.
    let fields = [
        ("csrf_token", csrf.as_str()),
        ("name", "Plain"),
        ("background", "#101820"),
        ("surface", "#fee715"),
        ("text", "#101820"),
        ("primary", "#101820"),
        ("link", "#101820"),
        ("error", "#8b0000"),
        ("font", "verdana"),
        ("corner_radius", "0"),
        ("logo_placement", "right"),
        ("en_title", "Checkout"),
        ("en_button", "Pay securely"),
        ("en_footer", ""),
        ("second_language", ""),
    ];
    let preview = app.post_form(&format!("{editor_path}/preview"), &fields).await;
    assert_eq!(preview.status(), StatusCode::OK);
    assert_eq!(preview.headers()["x-frame-options"], "SAMEORIGIN");
    assert!(preview.headers()["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'self'"));
    let html = preview.text().await.unwrap();
    assert!(html.contains("Pay securely") && html.contains("Preview with test data"), "{html}");
    let start = html.find("/payment-page/preview.css?d").unwrap();
    let css_path = html[start..start + html[start..].find('"').unwrap()].replace("&#x3D;", "=");
    let css = app.get(&css_path).await.text().await.unwrap();
    assert!(css.contains("--pp-surface:#fee715") && css.contains("Verdana"), "{css}");
    let saved = app.get(&format!("{editor_path}/preview")).await.text().await.unwrap();
    assert!(saved.contains(">Pay"), "the saved draft is still the default: {saved}");
    let bad = [("csrf_token", csrf.as_str()), ("name", "x"), ("background", "red"), ("font", "verdana")];
    let refused = app.post_form(&format!("{editor_path}/preview"), &bad).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);

    // Another company's people find none of it.
    let (other, _) = app.company("Globex", &["Store"]).await;
    let outsider = app.another_browser();
    outsider.sign_in_with_second_factor(other, "gail", BuiltinRole::MerchantAdmin).await;
    assert_eq!(outsider.get(&editor_path).await.status(), StatusCode::NOT_FOUND);
    let style_id = editor_path.rsplit('/').next().unwrap();
    assert_eq!(outsider.get(&format!("/api/v1/payment-page/styles/{style_id}")).await.status(), StatusCode::NOT_FOUND);
    let listed: Value = outsider.get("/api/v1/payment-page/styles").await.json().await.unwrap();
    assert_eq!(listed, json!([]));
}
