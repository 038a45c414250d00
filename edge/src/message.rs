//! The runtime-neutral request and response the pipeline works on; adapters translate to and
//! from their own types.

/// An incoming request, without its body (the body streams through a
/// [`crate::ports::BodySource`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeRequest {
    /// Upper-case method.
    pub method: String,
    /// The absolute path, still percent-encoded.
    pub path: String,
    /// The query without its `?`.
    pub query: Option<String>,
    /// Header fields with lower-case names, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The client's address as the adapter determined it (see
    /// [`crate::config::EdgeConfig::client_ip`]).
    pub client_ip: String,
}

impl EdgeRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }
}

/// The answer to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeResponse {
    pub status: u16,
    /// Header fields with lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl EdgeResponse {
    /// An empty response with `status`.
    pub fn new(status: u16) -> Self {
        EdgeResponse {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }

    /// Sets header `name` to `value`, replacing every earlier value.
    pub fn set_header(&mut self, name: &str, value: impl Into<String>) {
        self.remove_header(name);
        self.headers.push((name.to_ascii_lowercase(), value.into()));
    }

    /// Removes every value of header `name`.
    pub fn remove_header(&mut self, name: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }
}

fn find<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}
