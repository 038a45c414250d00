//! The web console's built assets (`console/dist/`, committed and rebuilt by CI), embedded so
//! every runtime serves the same bytes at `/` with the console's CSP.
//!
//! Choices: the console lives at `/` with hash routes (`/#/rules`), so no console path can
//! shadow an API route; its few files are answered before the route table, for any address,
//! blocked ones included (like the probes: a fixed file reveals nothing and costs what a refusal
//! costs, and a blocked user then reads, in the console, how long the block lasts); a request
//! with a query string is not a console request and takes the API's path (intrusion check
//! included). Each answer carries a strong `ETag` and honours `If-None-Match`.

use std::sync::OnceLock;

use sha2::{Digest, Sha256};
use shared::headers::{ResponseProfile, security_headers};

use crate::message::{EdgeRequest, EdgeResponse};

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const INDEX: &[u8] = include_bytes!("../../console/dist/index.html");

const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: INDEX,
    },
    Asset {
        path: "/index.html",
        content_type: "text/html; charset=utf-8",
        body: INDEX,
    },
    Asset {
        path: "/assets/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../console/dist/assets/app.js"),
    },
    Asset {
        path: "/assets/app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../console/dist/assets/app.css"),
    },
    Asset {
        path: "/assets/icon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../../console/dist/assets/icon.svg"),
    },
];

/// Strong entity tags of [`ASSETS`], computed once.
fn etags() -> &'static [String] {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|asset| {
                let digest = Sha256::digest(asset.body);
                format!("\"{}\"", hex::encode(&digest[..12]))
            })
            .collect()
    })
}

/// Whether `request` asks for a console file: `GET` or `HEAD` of one of its paths, no query.
pub fn is_console_request(request: &EdgeRequest) -> bool {
    matches!(request.method.as_str(), "GET" | "HEAD")
        && request.query.is_none()
        && ASSETS.iter().any(|asset| asset.path == request.path)
}

/// The answer to a console request (see [`is_console_request`]); `None` for anything else.
/// Call [`secure`] on it once the pipeline's own response headers are set.
pub fn answer(request: &EdgeRequest) -> Option<EdgeResponse> {
    if !is_console_request(request) {
        return None;
    }
    let index = ASSETS.iter().position(|a| a.path == request.path)?;
    let asset = &ASSETS[index];
    let etag = &etags()[index];
    let fresh = request
        .header("if-none-match")
        .is_some_and(|tags| tags.split(',').any(|tag| tag.trim() == etag));
    let mut response = EdgeResponse::new(if fresh { 304 } else { 200 });
    response.set_header("content-type", asset.content_type);
    response.set_header("etag", etag.clone());
    if !fresh {
        response.body = asset.body.to_vec();
    }
    Some(response)
}

/// Replaces the API's security headers of `response` with the console's (its CSP allows the
/// console's own scripts, styles, images and connections, nothing else).
pub fn secure(response: &mut EdgeResponse) {
    for (name, value) in security_headers(ResponseProfile::Console) {
        response.set_header(name, *value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str, headers: &[(&str, &str)]) -> EdgeRequest {
        EdgeRequest {
            method: "GET".into(),
            path: path.into(),
            query: None,
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            client_ip: "198.51.100.7".into(),
        }
    }

    fn text(body: &[u8]) -> &str {
        std::str::from_utf8(body).expect("utf-8")
    }

    #[test]
    fn the_index_loads_only_same_origin_files_and_nothing_inline() {
        let index = answer(&get("/", &[])).expect("the index");
        assert_eq!(index.status, 200);
        assert_eq!(
            index.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        let html = text(&index.body);
        for file in ["/assets/app.js", "/assets/app.css", "/assets/icon.svg"] {
            assert!(html.contains(file), "{file}");
            assert_eq!(answer(&get(file, &[])).expect(file).status, 200, "{file}");
        }
        assert!(!html.contains("style="), "no inline style");
        assert!(!html.contains("<style"), "no inline stylesheet");
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "no other origin"
        );
        let scripts: Vec<_> = html.match_indices("<script").collect();
        assert_eq!(scripts.len(), 1);
        assert!(html.contains(r#"<script type="module" src="/assets/app.js"></script>"#));
    }

    #[test]
    fn the_script_needs_no_eval() {
        let script = answer(&get("/assets/app.js", &[])).expect("script");
        let js = text(&script.body);
        assert!(!js.contains("eval("), "no eval");
        assert!(!js.contains("new Function"), "no Function constructor");
        assert!(!js.contains("localStorage"), "no token storage");
    }

    #[test]
    fn an_unchanged_file_answers_304_and_other_paths_are_not_console_files() {
        let first = answer(&get("/assets/app.css", &[])).expect("css");
        let etag = first.header("etag").expect("etag").to_owned();
        let again = answer(&get("/assets/app.css", &[("if-none-match", &etag)])).expect("css");
        assert_eq!(again.status, 304);
        assert!(again.body.is_empty());
        assert_eq!(answer(&get("/assets/other.js", &[])), None);
        assert_eq!(answer(&get("/api/v1/rules", &[])), None);
        let mut with_query = get("/", &[]);
        with_query.query = Some("x=1".into());
        assert_eq!(answer(&with_query), None);
        let mut post = get("/", &[]);
        post.method = "POST".into();
        assert_eq!(answer(&post), None);
    }

    #[test]
    fn console_answers_carry_the_console_csp() {
        let mut response = answer(&get("/", &[])).expect("index");
        crate::stage::respond::finish(&mut response, "rid", &[], None);
        secure(&mut response);
        assert_eq!(
            response.header("content-security-policy"),
            Some(shared::headers::CONSOLE_CSP)
        );
        assert_eq!(response.header("x-frame-options"), Some("DENY"));
        assert_eq!(response.header("cache-control"), Some("no-cache"));
    }
}
