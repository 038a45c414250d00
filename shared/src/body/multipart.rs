//! A strict reader of `multipart/form-data` bodies (RFC 7578), enough to check an upload before
//! it is forwarded: part names, file names, declared types and contents. Never panics.

/// Most parts one body may have.
pub const MAX_PARTS: usize = 32;
/// Longest header block of one part.
const MAX_PART_HEADER_BYTES: usize = 4096;

/// One part of a form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part<'a> {
    /// The `name` of its `Content-Disposition`.
    pub name: String,
    /// The `filename`, when it is a file.
    pub filename: Option<String>,
    /// Its declared `Content-Type`.
    pub content_type: Option<String>,
    pub data: &'a [u8],
}

/// Why a body is not a well-formed form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MultipartError {
    #[error("the content type names no boundary")]
    MissingBoundary,
    #[error("the body does not follow its boundary")]
    Malformed,
    #[error("a part has no name")]
    UnnamedPart,
    #[error("the form has too many parts")]
    TooManyParts,
}

/// The `boundary` parameter of a `multipart/form-data` content type (1 to 70 characters).
pub fn boundary(content_type: &str) -> Result<&str, MultipartError> {
    content_type
        .split(';')
        .skip(1)
        .filter_map(|param| param.trim().split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, value)| value.trim().trim_matches('"'))
        .filter(|b| (1..=70).contains(&b.len()))
        .ok_or(MultipartError::MissingBoundary)
}

/// Splits `body` into its parts.
pub fn parse<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<Part<'a>>, MultipartError> {
    let delimiter = [b"--", boundary.as_bytes()].concat();
    let next_delimiter = [b"\r\n--", boundary.as_bytes()].concat();
    let mut at = find(body, &delimiter, 0).ok_or(MultipartError::Malformed)? + delimiter.len();
    let mut parts = Vec::new();
    loop {
        let rest = body.get(at..).ok_or(MultipartError::Malformed)?;
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        if !rest.starts_with(b"\r\n") {
            return Err(MultipartError::Malformed);
        }
        at += 2;
        let header_end = find(body, b"\r\n\r\n", at).ok_or(MultipartError::Malformed)?;
        if header_end - at > MAX_PART_HEADER_BYTES {
            return Err(MultipartError::Malformed);
        }
        let headers = String::from_utf8_lossy(&body[at..header_end]);
        let data_start = header_end + 4;
        let data_end = find(body, &next_delimiter, data_start).ok_or(MultipartError::Malformed)?;
        if parts.len() == MAX_PARTS {
            return Err(MultipartError::TooManyParts);
        }
        parts.push(part(&headers, &body[data_start..data_end])?);
        at = data_end + next_delimiter.len();
    }
}

fn part<'a>(headers: &str, data: &'a [u8]) -> Result<Part<'a>, MultipartError> {
    let mut name = None;
    let mut filename = None;
    let mut content_type = None;
    for line in headers.split("\r\n") {
        let Some((field, value)) = line.split_once(':') else {
            continue;
        };
        let field = field.trim();
        if field.eq_ignore_ascii_case("content-disposition") {
            for param in value.split(';').skip(1) {
                if let Some((key, raw)) = param.trim().split_once('=') {
                    let text = raw.trim().trim_matches('"').to_owned();
                    match key.trim().to_ascii_lowercase().as_str() {
                        "name" => name = Some(text),
                        "filename" => filename = Some(text),
                        _ => {}
                    }
                }
            }
        } else if field.eq_ignore_ascii_case("content-type") {
            content_type = Some(value.trim().to_owned());
        }
    }
    Ok(Part {
        name: name
            .filter(|n| !n.is_empty())
            .ok_or(MultipartError::UnnamedPart)?,
        filename,
        content_type,
        data,
    })
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let first = *needle.first()?;
    let mut index = from;
    while index + needle.len() <= haystack.len() {
        let offset = haystack.get(index..)?.iter().position(|&b| b == first)?;
        index += offset;
        if haystack.get(index..index + needle.len())? == needle {
            return Some(index);
        }
        index += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORM: &[u8] = b"--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n--XyZ\r\nContent-Disposition: form-data; name=\"confidence_threshold\"\r\n\r\n0.5\r\n--XyZ--\r\n";

    #[test]
    fn parts_are_read_with_names_types_and_data() {
        let boundary = boundary("multipart/form-data; boundary=\"XyZ\"").expect("boundary");
        let parts = parse(FORM, boundary).expect("well formed");
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "image");
        assert_eq!(parts[0].filename.as_deref(), Some("a.png"));
        assert_eq!(parts[0].content_type.as_deref(), Some("image/png"));
        assert_eq!(parts[0].data, b"\x89PNG");
        assert_eq!(parts[1].name, "confidence_threshold");
        assert_eq!(parts[1].data, b"0.5");
    }

    #[test]
    fn broken_forms_are_refused_without_panicking() {
        assert_eq!(
            boundary("multipart/form-data"),
            Err(MultipartError::MissingBoundary)
        );
        assert_eq!(
            parse(b"no delimiter", "XyZ"),
            Err(MultipartError::Malformed)
        );
        assert_eq!(parse(&FORM[..40], "XyZ"), Err(MultipartError::Malformed));
        for cut in 0..FORM.len() {
            let _ = parse(&FORM[..cut], "XyZ");
        }
        let unnamed = b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--";
        assert_eq!(parse(unnamed, "b"), Err(MultipartError::UnnamedPart));
    }
}
