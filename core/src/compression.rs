//! Response compression: Brotli or gzip, as the client asks (`Accept-Encoding`), for the
//! text the dashboard sends (pages, styles, scripts, JSON, CSV) once it is worth it; images,
//! files that are compressed already (XLSX, PNG, PDF) and small answers go as they are.
//!
//! Request bodies are never decompressed: a small compressed upload could expand past
//! every size limit. A page's secrets (its CSRF token) are masked afresh on every page
//! ([`crate::auth::session_csrf_token`]), so that the size of a compressed page tells
//! nothing about them (BREACH).

use async_compression::Level;
use async_compression::tokio::bufread::{BrotliEncoder, GzipEncoder};
use http_body::Body as _;
use http_body_util::combinators::BoxBody;
use poem::http::{HeaderMap, HeaderValue, header};
use poem::{Body, Endpoint, IntoResponse, Middleware, Request, Response, Result};
use tokio::io::BufReader;

/// Answers smaller than this go uncompressed: the saving would not pay for the work.
const SMALLEST: u64 = 1024;

/// The middleware; see the module.
pub struct Compression;

impl<E: Endpoint> Middleware<E> for Compression {
    type Output = CompressionEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        CompressionEndpoint(ep)
    }
}

pub struct CompressionEndpoint<E>(E);

impl<E: Endpoint> Endpoint for CompressionEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        let coding = Coding::accepted(req.headers());
        let response = self.0.call(req).await?.into_response();
        Ok(match coding {
            Some(coding) => compress(response, coding),
            None => response,
        })
    }
}

/// The codings offered, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coding {
    Brotli,
    Gzip,
}

impl Coding {
    fn name(self) -> &'static str {
        match self {
            Coding::Brotli => "br",
            Coding::Gzip => "gzip",
        }
    }

    /// The coding the client prefers among ours (by its `q` weights; ours break a tie),
    /// none when it accepts neither.
    fn accepted(headers: &HeaderMap) -> Option<Coding> {
        let offers = headers
            .get_all(header::ACCEPT_ENCODING)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|offer| {
                let mut parts = offer.split(';').map(str::trim);
                let name = parts.next()?;
                let weight =
                    parts.find_map(|param| param.strip_prefix("q=").and_then(|q| q.parse::<f32>().ok())).unwrap_or(1.0);
                Some((name.to_ascii_lowercase(), weight))
            })
            .collect::<Vec<_>>();
        let weight_of = |coding: Coding| {
            offers
                .iter()
                .find(|(name, _)| name == coding.name())
                .or_else(|| offers.iter().find(|(name, _)| name == "*"))
                .map_or(0.0, |(_, weight)| *weight)
        };
        [Coding::Brotli, Coding::Gzip]
            .into_iter()
            .map(|coding| (coding, weight_of(coding)))
            .filter(|(_, weight)| *weight > 0.0)
            .fold(None, |best: Option<(Coding, f32)>, (coding, weight)| match best {
                Some((_, best_weight)) if best_weight >= weight => best,
                _ => Some((coding, weight)),
            })
            .map(|(coding, _)| coding)
    }
}

/// Whether a response is text worth compressing.
fn compressible(response: &Response) -> bool {
    if response.headers().contains_key(header::CONTENT_ENCODING) {
        return false;
    }
    let Some(content_type) = response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let media = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    media.starts_with("text/")
        || matches!(
            media.as_str(),
            "application/json" | "application/problem+json" | "application/javascript" | "image/svg+xml"
        )
}

fn compress(mut response: Response, coding: Coding) -> Response {
    // Whatever the answer, a cache must keep one copy per coding asked for.
    response.headers_mut().append(header::VARY, HeaderValue::from_static("accept-encoding"));
    if !compressible(&response) {
        return response;
    }
    // poem's body as hyper sees it, to read its size when it is known.
    let body: BoxBody<bytes::Bytes, std::io::Error> = response.take_body().into();
    if body.size_hint().upper().is_some_and(|size| size < SMALLEST) {
        response.set_body(Body::from(body));
        return response;
    }
    let text = BufReader::new(Body::from(body).into_async_read());
    response.set_body(match coding {
        Coding::Brotli => Body::from_async_read(BrotliEncoder::with_quality(text, Level::Precise(5))),
        Coding::Gzip => Body::from_async_read(GzipEncoder::with_quality(text, Level::Default)),
    });
    response.headers_mut().remove(header::CONTENT_LENGTH);
    // The compressed bytes are not the ones the tag names: it holds only weakly now.
    if let Some(tag) = response.headers().get(header::ETAG).and_then(|tag| tag.to_str().ok())
        && !tag.starts_with("W/")
        && let Ok(weak) = HeaderValue::from_str(&format!("W/{tag}"))
    {
        response.headers_mut().insert(header::ETAG, weak);
    }
    response.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding.name()));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepting(value: &str) -> Option<Coding> {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(value).expect("a header value"));
        Coding::accepted(&headers)
    }

    #[test]
    fn the_client_chooses_among_brotli_and_gzip() {
        assert_eq!(accepting("gzip, deflate, br, zstd"), Some(Coding::Brotli));
        assert_eq!(accepting("gzip"), Some(Coding::Gzip));
        assert_eq!(accepting("br;q=0.5, gzip;q=0.8"), Some(Coding::Gzip));
        assert_eq!(accepting("*"), Some(Coding::Brotli));
        assert_eq!(accepting("br;q=0, *;q=0.1"), Some(Coding::Gzip));
        assert_eq!(accepting("identity"), None);
        assert_eq!(accepting("deflate"), None);
        assert_eq!(Coding::accepted(&HeaderMap::new()), None);
    }
}
