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
    // Refused by its declared length before it is read: the answer is 413, unless the
    // server has closed the connection before the client finished writing the body.
    let path = format!("/api/v1/payment-page/styles/{id}/logo");
    let sent = app.client.put(app.url(&path)).header("Content-Type", "application/octet-stream").body(huge).send().await;
    match sent {
        Ok(response) => assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE),
        Err(error) => assert!(error.is_request(), "the connection was cut while the body was sent: {error}"),
    }
    let style: Value = app.get(&format!("/api/v1/payment-page/styles/{id}")).await.json().await.unwrap();
    assert!(style["logo_url"].is_null(), "nothing was stored: {style}");
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
    // Saved with text hard to read: publishing asks first, then publishes.
    let pale: Vec<(&str, &str)> =
        fields.iter().map(|&(name, value)| if name == "text" { (name, "#d0d0d0") } else { (name, value) }).collect();
    assert_eq!(app.post_form(&editor_path, &pale).await.status(), StatusCode::SEE_OTHER);
    let publication = format!("{editor_path}/publication");
    let asked = app.post_form(&publication, &[("csrf_token", csrf.as_str())]).await;
    assert_eq!(asked.status(), StatusCode::OK);
    let asked = asked.text().await.unwrap();
    assert!(asked.contains("Publish anyway") && asked.contains("below the 4.5:1 WCAG AA"), "{asked}");
    let versions = format!("/api/v1/payment-page/versions?project_id={}", projects[0]);
    assert_eq!(app.get(&versions).await.json::<Value>().await.unwrap(), json!([]), "nothing published yet");
    let confirmed = app.post_form(&publication, &[("csrf_token", csrf.as_str()), ("confirmed", "1")]).await;
    assert_eq!(confirmed.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.get(&versions).await.json::<Value>().await.unwrap().as_array().unwrap().len(), 1);
    let (status, index) = app.get_text(&dashboard_tests::location(confirmed.headers())).await;
    assert_eq!(status, StatusCode::OK);
    assert!(index.contains("Colours below WCAG AA") && index.contains("Published: customers now pay on this style."));
    // A mistake is told, and what was typed stays in the form.
    let typo: Vec<(&str, &str)> = fields
        .iter()
        .map(|&(name, value)| match name {
            "background" => (name, "red"),
            "en_title" => (name, "Kept title"),
            _ => (name, value),
        })
        .collect();
    let kept = app.post_form(&editor_path, &typo).await.text().await.unwrap();
    assert!(kept.contains("must be written #rrggbb") && kept.contains("value=\"Kept title\""), "{kept}");
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

/// A shop: its success page, and its callback receiver (the bodies it got).
#[derive(Clone, Default)]
struct Shop {
    callbacks: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

#[poem::handler]
fn shop_paid() -> poem::web::Html<&'static str> {
    poem::web::Html("<!doctype html><html lang=en><title>Thank you</title><h1>Thank you for your order</h1></html>")
}

#[poem::handler]
fn shop_hook(body: String, shop: poem::web::Data<&Shop>) -> &'static str {
    shop.callbacks.lock().unwrap().push(body);
    "ok"
}

/// Starts the shop; its address.
async fn start_shop(shop: Shop) -> String {
    use poem::EndpointExt;
    use poem::listener::{Acceptor, Listener};
    let acceptor = poem::listener::TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
    let port = acceptor.local_addr()[0].as_socket_addr().unwrap().port();
    let routes = poem::Route::new().at("/paid", poem::get(shop_paid)).at("/hook", poem::post(shop_hook));
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(routes.data(shop)));
    format!("http://127.0.0.1:{port}")
}

/// Sets an input's value as a person would (for colour pickers, which take no typing),
/// with the events a script listens to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merchant_designs_the_page_and_a_customer_pays_a_link_on_a_phone_with_3_d_secure() {
    use crate::browser::{click, fill, serious_violations, set_value, sign_in_with_code, wait_for_path};
    use dashboard_tests::browser::Browser;
    use fantoccini::Locator;
    let Some(browser) = Browser::start().await else { return };
    let Some(axe) = dashboard_tests::axe::script() else { return };
    let options = dashboard_tests::TestOptions { plain_http: false, ..dashboard_tests::TestOptions::default() };
    let app = TestApp::spawn_with(dashboard_tests::Backend::Sqlite, options).await.unwrap();
    let (company, projects) = app.company("Acme", &["Shop"]).await;
    let project = projects[0];
    let shop = Shop::default();
    let shop_url = start_shop(shop.clone()).await;

    // The shop's addresses, set by a colleague through the API.
    app.sign_in_with_second_factor(company, "ops", BuiltinRole::MerchantAdmin).await;
    let redirects = json!({ "success_url": format!("{shop_url}/paid"), "failure_url": format!("{shop_url}/sorry") });
    let put = |path: String, body: Value| app.client.put(app.url(&path)).json(&body).send();
    assert!(put(format!("/api/v1/projects/{project}/redirects"), redirects).await.unwrap().status().is_success());
    let hook = json!({ "event": "payment.completed", "url": format!("{shop_url}/hook"), "enabled": true });
    assert!(put(format!("/api/v1/projects/{project}/callbacks"), hook).await.unwrap().status().is_success());

    // The merchant designs a style in the designer and publishes it.
    let phone = "+447700900123";
    let merchant = app.user_with_phone(company, "maya", BuiltinRole::MerchantAdmin, Some(phone)).await;
    let authenticator = app.enable_second_factor(merchant, phone).await;
    sign_in_with_code(&browser, &app, "maya", &authenticator).await;
    browser.client.goto(&app.url("/payment-page")).await.unwrap();
    fill(&browser, &format!("name-{project}"), "Autumn").await;
    click(&browser, "form[action='/payment-page/styles'] button").await;
    assert_eq!(browser.wait_for_text(".page-head h1", "Autumn").await, "Autumn");
    set_value(&browser, "primary", "#7a1f5c").await;
    set_value(&browser, "background", "#fdf6e3").await;
    set_value(&browser, "font", "georgia").await;
    let title = browser.client.find(Locator::Id("en_title")).await.unwrap();
    title.clear().await.unwrap();
    title.send_keys("Pay Acme").await.unwrap();
    click(&browser, "#design-form button.button-primary").await;
    browser.wait_for_text(".alert-info", "The draft is saved. Customers see it once you publish it.").await;
    let logo = std::env::temp_dir().join(format!("logo-{}.png", uuid::Uuid::new_v4().simple()));
    std::fs::write(&logo, png(480, 120)).unwrap();
    browser.client.find(Locator::Id("logo_file")).await.unwrap().send_keys(&logo.display().to_string()).await.unwrap();
    click(&browser, "form input[value=logo] ~ button").await;
    browser.wait_for_text(".alert-info", "The image is saved in the draft.").await;
    serious_violations(&browser, &axe, "the designer").await;
    browser.screenshot("payment-page-designer").await;
    click(&browser, "form[action$='/publication'] button").await;
    let published = "Published: customers now pay on this style.";
    assert_eq!(browser.wait_for_text(".alert-info", published).await, published);

    // A link, made on the Payment links page.
    browser.client.goto(&app.url("/payment-links")).await.unwrap();
    click(&browser, "details.card > summary").await;
    fill(&browser, "description", "Two concert tickets").await;
    fill(&browser, "amount", "49.90").await;
    click(&browser, "form[action='/payment-links'] button[type=submit]").await;
    let detail = wait_for_path(&browser, |url| url.path().starts_with("/payment-links/lnk_")).await;
    let link_id = detail.path().rsplit('/').next().unwrap().to_owned();
    browser.screenshot("payment-link").await;

    // The customer, on a phone, pays with a card that asks for 3-D Secure.
    browser.client.set_window_size(390, 844).await.unwrap();
    browser.client.goto(&app.url(&format!("/pay/{link_id}"))).await.unwrap();
    assert_eq!(browser.wait_for_text("h1", "Pay Acme").await, "Pay Acme");
    serious_violations(&browser, &axe, "the hosted page").await;
    browser.screenshot("hosted-page-phone").await;
    fill(&browser, "card_number", "4000000000003220").await;
    let typed = browser.client.find(Locator::Id("card_number")).await.unwrap().prop("value").await.unwrap();
    assert_eq!(typed.as_deref(), Some("4000 0000 0000 3220"), "the page's script groups the digits");
    fill(&browser, "expiry", "1239").await;
    fill(&browser, "cvv", "123").await;
    fill(&browser, "email", "ann@example.com").await;
    click(&browser, "button.pp-pay").await;
    wait_for_path(&browser, |url| url.path().starts_with("/sandbox/3ds/")).await;
    click(&browser, "button[value=pass]").await;
    let landed = wait_for_path(&browser, |url| url.as_str().starts_with(&shop_url)).await;
    assert_eq!(landed.path(), "/paid", "{landed}");
    browser.wait_for_text("h1", "Thank you for your order").await;
    browser.screenshot("hosted-page-back-at-the-shop").await;
    let query: std::collections::HashMap<String, String> = landed.query_pairs().into_owned().collect();
    let payment_id = query["payment_id"].clone();
    assert_eq!((query["status"].as_str(), query["amount"].as_str()), ("completed", "4990"));
    assert!(query["signature"].starts_with("t="), "{landed}");

    // In the registry, delivered to the shop, listed on the link's page.
    let payment: Value = app.get(&format!("/api/v1/payments/{payment_id}")).await.json().await.unwrap();
    assert_eq!((payment["status"].as_str(), payment["kind"].as_str()), (Some("completed"), Some("payment_link")));
    for _ in 0..100 {
        if shop.callbacks.lock().unwrap().iter().any(|body| body.contains(&payment_id)) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(shop.callbacks.lock().unwrap().iter().any(|body| body.contains(&payment_id)), "the callback arrived");
    browser.client.set_window_size(1440, 900).await.unwrap();
    browser.client.goto(&app.url(&format!("/payment-links/{link_id}"))).await.unwrap();
    let payments = browser.client.find(Locator::Css("main")).await.unwrap().text().await.unwrap();
    assert!(payments.contains(&payment_id) && payments.contains("Completed"), "{payments}");
    browser.close().await;
    let _ = std::fs::remove_file(logo);
}
