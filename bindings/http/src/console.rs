//! The admin console at `/console`: a static front end (built from `console/` by
//! `make console` and embedded at compile time by `build.rs`) that signs in with an API key
//! and calls only the public API. Every response carries a strict Content-Security-Policy:
//! scripts, styles and requests from this origin only, no inline code, no framing.

use axum::extract::Path;
use axum::http::header::{
    HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// The built files, by path under `console/dist` (empty when the console was not built).
static ASSETS: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/console_assets.rs"));

/// The policy sent with every console response.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const NOT_BUILT: &str = "The memsilo console was not built into this binary.\n\
    Build it with `make console` (runs `npm ci && npm run build` in console/), then rebuild \
    memsilo (`cargo build -p memsilo-http`): the files in console/dist are embedded at compile \
    time.\n";

/// Whether this binary carries the console.
pub fn is_built() -> bool {
    !ASSETS.is_empty()
}

/// `GET /console` and `GET /console/`: the page.
pub async fn index() -> Response {
    serve("index.html")
}

/// `GET /console/{*path}`: a built file.
pub async fn asset(Path(path): Path<String>) -> Response {
    serve(if path.is_empty() { "index.html" } else { &path })
}

fn serve(path: &str) -> Response {
    if !is_built() {
        return secure(
            (StatusCode::SERVICE_UNAVAILABLE, NOT_BUILT).into_response(),
            "text/plain; charset=utf-8",
            "no-store",
        );
    }
    let Some((_, bytes)) = ASSETS.iter().find(|(name, _)| *name == path) else {
        let body = format!("No console file {path:?}.\n");
        return secure(
            (StatusCode::NOT_FOUND, body).into_response(),
            "text/plain; charset=utf-8",
            "no-store",
        );
    };
    // Vite names the files under assets/ by their content hash: they never change.
    let cache = if path.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    secure((StatusCode::OK, *bytes).into_response(), content_type(path), cache)
}

fn secure(mut resp: Response, content_type: &'static str, cache: &'static str) -> Response {
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    resp
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map_or("", |(_, ext)| ext) {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" => "application/json",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_by_extension() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("assets/index-abc.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("assets/x.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("noext"), "application/octet-stream");
    }
}
