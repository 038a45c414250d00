//! Image upload policy: a streaming size cap, magic-byte sniffing that must agree with the declared
//! type, and width and height read from the header alone so a decompression bomb is never decoded.

use crate::problem::ErrorCode;

/// Largest accepted upload body, counted while it streams in.
pub const MAX_UPLOAD_BYTES: u64 = 10 * 1024 * 1024;

/// Largest accepted width and largest accepted height, in pixels.
pub const MAX_IMAGE_DIMENSION: u32 = 4096;

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
const VP8_START_CODE: [u8; 3] = [0x9D, 0x01, 0x2A];
const VP8L_SIGNATURE: u8 = 0x2F;

/// Why an upload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadError {
    /// The body grew past its limit while streaming.
    #[error("the upload exceeds {limit} bytes")]
    TooLarge {
        /// The limit that was passed, in bytes.
        limit: u64,
    },
    /// The magic bytes are not those of a JPEG, PNG or WebP image.
    #[error("the upload is not a JPEG, PNG or WebP image")]
    NotAnImage,
    /// The declared content type is not one of the accepted image types.
    #[error("the declared content type is not image/jpeg, image/png or image/webp")]
    UnsupportedDeclaredType,
    /// The magic bytes say one format and the declared content type another.
    #[error("the upload is {actual} but was declared as {declared}")]
    TypeMismatch {
        /// What the content type said.
        declared: ImageKind,
        /// What the magic bytes say.
        actual: ImageKind,
    },
    /// The header is cut short or does not follow its format.
    #[error("the {kind} header is truncated or malformed")]
    MalformedHeader {
        /// The format the magic bytes announced.
        kind: ImageKind,
    },
    /// The header declares a zero width or height.
    #[error("the image has a zero width or height")]
    ZeroDimension,
    /// The header declares a width or height above [`MAX_IMAGE_DIMENSION`].
    #[error("the image is {width}x{height}; at most {max}x{max} is accepted", max = MAX_IMAGE_DIMENSION)]
    DimensionsTooLarge {
        /// Width in the header, in pixels.
        width: u32,
        /// Height in the header, in pixels.
        height: u32,
    },
}

impl UploadError {
    /// The stable wire code of this refusal.
    pub fn code(&self) -> ErrorCode {
        match self {
            UploadError::TooLarge { .. } => ErrorCode::PayloadTooLarge,
            UploadError::DimensionsTooLarge { .. } => ErrorCode::ImageTooLarge,
            UploadError::NotAnImage
            | UploadError::UnsupportedDeclaredType
            | UploadError::TypeMismatch { .. }
            | UploadError::MalformedHeader { .. }
            | UploadError::ZeroDimension => ErrorCode::InvalidImageFormat,
        }
    }
}

/// An accepted image format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageKind {
    /// JPEG (JFIF or Exif), `image/jpeg`.
    Jpeg,
    /// PNG, `image/png`.
    Png,
    /// WebP (lossy, lossless or extended), `image/webp`.
    Webp,
}

impl ImageKind {
    /// The canonical media type of the format.
    pub const fn mime(self) -> &'static str {
        match self {
            ImageKind::Jpeg => "image/jpeg",
            ImageKind::Png => "image/png",
            ImageKind::Webp => "image/webp",
        }
    }

    /// The format a declared `Content-Type` names, ignoring parameters, surrounding whitespace
    /// and case. `image/jpg` is accepted as an alias of `image/jpeg`: it is not registered, but
    /// common clients send it, and the magic bytes decide the format anyway.
    pub fn from_mime(content_type: &str) -> Option<ImageKind> {
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        if essence.eq_ignore_ascii_case("image/jpeg") || essence.eq_ignore_ascii_case("image/jpg") {
            Some(ImageKind::Jpeg)
        } else if essence.eq_ignore_ascii_case("image/png") {
            Some(ImageKind::Png)
        } else if essence.eq_ignore_ascii_case("image/webp") {
            Some(ImageKind::Webp)
        } else {
            None
        }
    }
}

impl std::fmt::Display for ImageKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.mime())
    }
}

/// What [`inspect`] learned from an accepted upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageInfo {
    /// The format, as sniffed and as declared.
    pub kind: ImageKind,
    /// Width in pixels, 1 to [`MAX_IMAGE_DIMENSION`].
    pub width: u32,
    /// Height in pixels, 1 to [`MAX_IMAGE_DIMENSION`].
    pub height: u32,
}

/// The format the leading magic bytes announce, if it is one of the accepted ones.
pub fn sniff(bytes: &[u8]) -> Option<ImageKind> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageKind::Jpeg)
    } else if bytes.starts_with(&PNG_SIGNATURE) {
        Some(ImageKind::Png)
    } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
        Some(ImageKind::Webp)
    } else {
        None
    }
}

/// Width and height of a `kind` image, read from its header only: nothing is decoded and nothing
/// is allocated, whatever the header claims. Refuses bytes that do not follow the format up to
/// the point where the size is stated.
pub fn dimensions(kind: ImageKind, bytes: &[u8]) -> Result<(u32, u32), UploadError> {
    let found = match kind {
        ImageKind::Png => png_dimensions(bytes),
        ImageKind::Jpeg => jpeg_dimensions(bytes),
        ImageKind::Webp => webp_dimensions(bytes),
    };
    found.ok_or(UploadError::MalformedHeader { kind })
}

/// Applies the whole upload policy to a buffered body: size, magic bytes, agreement with the
/// declared content type (when there is one), and header dimensions between 1 and
/// [`MAX_IMAGE_DIMENSION`].
pub fn inspect(
    bytes: &[u8],
    declared_content_type: Option<&str>,
) -> Result<ImageInfo, UploadError> {
    if bytes.len() as u64 > MAX_UPLOAD_BYTES {
        return Err(UploadError::TooLarge {
            limit: MAX_UPLOAD_BYTES,
        });
    }
    let kind = sniff(bytes).ok_or(UploadError::NotAnImage)?;
    if let Some(content_type) = declared_content_type {
        let declared =
            ImageKind::from_mime(content_type).ok_or(UploadError::UnsupportedDeclaredType)?;
        if declared != kind {
            return Err(UploadError::TypeMismatch {
                declared,
                actual: kind,
            });
        }
    }
    let (width, height) = dimensions(kind, bytes)?;
    if width == 0 || height == 0 {
        return Err(UploadError::ZeroDimension);
    }
    if width > MAX_IMAGE_DIMENSION || height > MAX_IMAGE_DIMENSION {
        return Err(UploadError::DimensionsTooLarge { width, height });
    }
    Ok(ImageInfo {
        kind,
        width,
        height,
    })
}

/// Counts the bytes of a body as it streams in, so an adapter stops reading at the limit instead
/// of buffering an oversized body first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimit {
    limit: u64,
    received: u64,
}

impl BodyLimit {
    /// A counter that admits at most `limit` bytes.
    pub const fn new(limit: u64) -> Self {
        BodyLimit { limit, received: 0 }
    }

    /// A counter for image uploads, admitting [`MAX_UPLOAD_BYTES`].
    pub const fn for_upload() -> Self {
        BodyLimit::new(MAX_UPLOAD_BYTES)
    }

    /// Refuses up front a body whose declared `Content-Length` is already over the limit.
    pub fn check_declared_length(&self, content_length: u64) -> Result<(), UploadError> {
        if content_length > self.limit {
            Err(UploadError::TooLarge { limit: self.limit })
        } else {
            Ok(())
        }
    }

    /// Records a chunk of `chunk_len` bytes. Fails once the total passes the limit, and keeps
    /// failing for every later chunk: the caller must stop reading at the first error.
    pub fn push(&mut self, chunk_len: usize) -> Result<(), UploadError> {
        let chunk_len = u64::try_from(chunk_len).unwrap_or(u64::MAX);
        self.received = self.received.saturating_add(chunk_len);
        if self.received > self.limit {
            Err(UploadError::TooLarge { limit: self.limit })
        } else {
            Ok(())
        }
    }

    /// Bytes seen so far (saturating).
    pub const fn received(&self) -> u64 {
        self.received
    }

    /// Bytes that may still arrive before the limit is passed.
    pub const fn remaining(&self) -> u64 {
        self.limit.saturating_sub(self.received)
    }

    /// The limit this counter enforces.
    pub const fn limit(&self) -> u64 {
        self.limit
    }
}

fn be_u16(bytes: &[u8], at: usize) -> Option<u16> {
    let b = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn le_u16(bytes: &[u8], at: usize) -> Option<u16> {
    let b = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

fn le_u24(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(3)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], 0]))
}

fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// PNG: the signature, then the IHDR chunk (length 13) with width and height as big-endian u32.
fn png_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    if !bytes.starts_with(&PNG_SIGNATURE)
        || be_u32(bytes, 8)? != 13
        || bytes.get(12..16)? != b"IHDR"
    {
        return None;
    }
    Some((be_u32(bytes, 16)?, be_u32(bytes, 20)?))
}

/// JPEG: walks the marker segments after SOI to the first start-of-frame (SOF0..SOF15 less DHT,
/// JPG and DAC), skipping fill bytes and standalone markers. A scan or EOI before any frame
/// header, a byte where a marker should be, or a short segment is malformed.
fn jpeg_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut at = 2usize;
    loop {
        if *bytes.get(at)? != 0xFF {
            return None;
        }
        while *bytes.get(at)? == 0xFF {
            at += 1;
        }
        let marker = bytes[at];
        at += 1;
        match marker {
            // TEM and RST0..RST7 stand alone, without a length.
            0x01 | 0xD0..=0xD7 => continue,
            // A stuffed zero, a second SOI, EOI or a scan before any frame header.
            0x00 | 0xD8 | 0xD9 | 0xDA => return None,
            _ => {}
        }
        let length = usize::from(be_u16(bytes, at)?);
        if length < 2 {
            return None;
        }
        let is_frame_header =
            (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if is_frame_header {
            // length (2), sample precision (1), lines (2), samples per line (2), components (1).
            if length < 8 {
                return None;
            }
            let height = be_u16(bytes, at + 3)?;
            let width = be_u16(bytes, at + 5)?;
            return Some((u32::from(width), u32::from(height)));
        }
        at = at.checked_add(length)?;
    }
}

/// WebP: the RIFF/WEBP header, then the first chunk, which is `VP8 ` (lossy), `VP8L`
/// (lossless) or `VP8X` (extended, with the canvas size).
fn webp_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    if !bytes.starts_with(b"RIFF") || bytes.get(8..12)? != b"WEBP" {
        return None;
    }
    let fourcc = bytes.get(12..16)?;
    let chunk_size = le_u32(bytes, 16)?;
    let data = 20usize;
    match fourcc {
        b"VP8 " => {
            // Frame tag (3 bytes, bit 0 clear on a key frame), start code, then 14-bit sizes
            // (the top two bits are the scaling mode).
            if chunk_size < 10
                || bytes.get(data)? & 1 != 0
                || bytes.get(data + 3..data + 6)? != VP8_START_CODE
            {
                return None;
            }
            let width = le_u16(bytes, data + 6)? & 0x3FFF;
            let height = le_u16(bytes, data + 8)? & 0x3FFF;
            Some((u32::from(width), u32::from(height)))
        }
        b"VP8L" => {
            // Signature, then width-1 and height-1 in 14 bits each and a 3-bit version of 0.
            if chunk_size < 5 || *bytes.get(data)? != VP8L_SIGNATURE {
                return None;
            }
            let bits = le_u32(bytes, data + 1)?;
            if bits >> 29 != 0 {
                return None;
            }
            Some(((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1))
        }
        b"VP8X" => {
            // Flags (1 byte), reserved (3), canvas width-1 and height-1 in 24 bits each.
            if chunk_size < 10 {
                return None;
            }
            Some((le_u24(bytes, data + 4)? + 1, le_u24(bytes, data + 7)? + 1))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut bytes = PNG_SIGNATURE.to_vec();
        bytes.extend_from_slice(&13u32.to_be_bytes());
        bytes.extend_from_slice(b"IHDR");
        bytes.extend_from_slice(&width.to_be_bytes());
        bytes.extend_from_slice(&height.to_be_bytes());
        bytes.extend_from_slice(&[8, 2, 0, 0, 0]);
        bytes.extend_from_slice(&[0, 0, 0, 0]);
        bytes
    }

    fn segment(marker: u8, payload: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0xFF, marker];
        bytes.extend_from_slice(&u16::try_from(payload.len() + 2).unwrap().to_be_bytes());
        bytes.extend_from_slice(payload);
        bytes
    }

    fn sof(marker: u8, width: u16, height: u16) -> Vec<u8> {
        let mut payload = vec![8];
        payload.extend_from_slice(&height.to_be_bytes());
        payload.extend_from_slice(&width.to_be_bytes());
        payload.extend_from_slice(&[1, 1, 0x11, 0]);
        segment(marker, &payload)
    }

    fn jpeg(width: u16, height: u16) -> Vec<u8> {
        let mut bytes = vec![0xFF, 0xD8];
        bytes.extend(segment(0xE0, b"JFIF\0\x01\x02\0\0\x01\0\x01\0\0"));
        bytes.extend(segment(0xDB, &[0; 65]));
        bytes.extend(sof(0xC0, width, height));
        bytes.extend(segment(0xDA, &[1, 1, 0, 0, 0x3F, 0]));
        bytes.extend_from_slice(&[0x12, 0x34, 0xFF, 0xD9]);
        bytes
    }

    fn riff(fourcc: &[u8; 4], chunk: &[u8]) -> Vec<u8> {
        let mut bytes = b"RIFF".to_vec();
        bytes.extend_from_slice(&u32::try_from(12 + chunk.len()).unwrap().to_le_bytes());
        bytes.extend_from_slice(b"WEBP");
        bytes.extend_from_slice(fourcc);
        bytes.extend_from_slice(&u32::try_from(chunk.len()).unwrap().to_le_bytes());
        bytes.extend_from_slice(chunk);
        bytes
    }

    fn webp_lossy(width: u16, height: u16) -> Vec<u8> {
        let mut chunk = vec![0x50, 0x02, 0x00];
        chunk.extend_from_slice(&VP8_START_CODE);
        chunk.extend_from_slice(&width.to_le_bytes());
        chunk.extend_from_slice(&height.to_le_bytes());
        chunk.extend_from_slice(&[0; 8]);
        riff(b"VP8 ", &chunk)
    }

    fn webp_lossless(width: u32, height: u32) -> Vec<u8> {
        let bits = (width - 1) | ((height - 1) << 14);
        let mut chunk = vec![VP8L_SIGNATURE];
        chunk.extend_from_slice(&bits.to_le_bytes());
        chunk.extend_from_slice(&[0; 4]);
        riff(b"VP8L", &chunk)
    }

    fn webp_extended(width: u32, height: u32) -> Vec<u8> {
        let mut chunk = vec![0x10, 0, 0, 0];
        chunk.extend_from_slice(&(width - 1).to_le_bytes()[..3]);
        chunk.extend_from_slice(&(height - 1).to_le_bytes()[..3]);
        riff(b"VP8X", &chunk)
    }

    #[test]
    fn mime_names_round_trip_and_ignore_parameters_and_case() {
        for kind in [ImageKind::Jpeg, ImageKind::Png, ImageKind::Webp] {
            assert_eq!(ImageKind::from_mime(kind.mime()), Some(kind));
        }
        assert_eq!(ImageKind::from_mime("image/jpg"), Some(ImageKind::Jpeg));
        assert_eq!(
            ImageKind::from_mime(" Image/PNG ; charset=binary"),
            Some(ImageKind::Png)
        );
        assert_eq!(ImageKind::from_mime("IMAGE/WEBP"), Some(ImageKind::Webp));
        assert_eq!(ImageKind::from_mime("image/gif"), None);
        assert_eq!(ImageKind::from_mime("image/svg+xml"), None);
        assert_eq!(ImageKind::from_mime("application/octet-stream"), None);
        assert_eq!(ImageKind::from_mime(""), None);
    }

    #[test]
    fn sniffs_each_format_and_nothing_else() {
        assert_eq!(sniff(&png(1, 1)), Some(ImageKind::Png));
        assert_eq!(sniff(&jpeg(1, 1)), Some(ImageKind::Jpeg));
        assert_eq!(sniff(&webp_lossy(1, 1)), Some(ImageKind::Webp));
        assert_eq!(sniff(b"GIF89a\x01\x00\x01\x00"), None);
        assert_eq!(sniff(b"RIFF\0\0\0\0WAVEfmt "), None);
        assert_eq!(sniff(b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>"), None);
        assert_eq!(sniff(&[]), None);
        assert_eq!(sniff(&[0xFF, 0xD8]), None);
    }

    #[test]
    fn reads_png_ihdr() {
        let info = inspect(&png(640, 480), Some("image/png")).unwrap();
        assert_eq!(
            info,
            ImageInfo {
                kind: ImageKind::Png,
                width: 640,
                height: 480
            }
        );
    }

    #[test]
    fn reads_jpeg_frame_header_after_app_segments() {
        let info = inspect(&jpeg(1920, 1080), Some("image/jpeg")).unwrap();
        assert_eq!(
            info,
            ImageInfo {
                kind: ImageKind::Jpeg,
                width: 1920,
                height: 1080
            }
        );
    }

    #[test]
    fn jpeg_walk_skips_fill_bytes_standalone_markers_and_non_frame_c_markers() {
        let mut bytes = vec![0xFF, 0xD8];
        bytes.extend_from_slice(&[0xFF, 0xFF, 0xFF]);
        bytes.extend(segment(0xE1, b"Exif\0\0"));
        bytes.extend_from_slice(&[0xFF, 0x01, 0xFF, 0xD3]);
        bytes.extend(segment(0xC4, &[0; 20]));
        bytes.extend(segment(0xCC, &[0; 6]));
        bytes.extend(segment(0xC8, &[0; 8]));
        bytes.extend_from_slice(&[0xFF, 0xFF]);
        bytes.extend(sof(0xC2, 300, 200));
        assert_eq!(dimensions(ImageKind::Jpeg, &bytes), Ok((300, 200)));
    }

    #[test]
    fn every_sof_marker_counts_as_a_frame_header() {
        for marker in (0xC0..=0xCF).filter(|m| ![0xC4, 0xC8, 0xCC].contains(m)) {
            let mut bytes = vec![0xFF, 0xD8];
            bytes.extend(sof(marker, 17, 23));
            assert_eq!(
                dimensions(ImageKind::Jpeg, &bytes),
                Ok((17, 23)),
                "marker {marker:#x}"
            );
        }
    }

    #[test]
    fn jpeg_without_a_frame_header_before_the_scan_is_malformed() {
        let malformed = Err(UploadError::MalformedHeader {
            kind: ImageKind::Jpeg,
        });
        let mut scan_first = vec![0xFF, 0xD8];
        scan_first.extend(segment(0xDA, &[1, 1, 0, 0, 0x3F, 0]));
        scan_first.extend(sof(0xC0, 10, 10));
        assert_eq!(dimensions(ImageKind::Jpeg, &scan_first), malformed);
        assert_eq!(
            dimensions(ImageKind::Jpeg, &[0xFF, 0xD8, 0xFF, 0xD9]),
            malformed
        );
        let mut garbage = vec![0xFF, 0xD8];
        garbage.extend(segment(0xE0, b"JFIF\0"));
        garbage.push(0x00);
        garbage.extend(sof(0xC0, 10, 10));
        assert_eq!(dimensions(ImageKind::Jpeg, &garbage), malformed);
        let mut short_length = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x01];
        short_length.extend(sof(0xC0, 10, 10));
        assert_eq!(dimensions(ImageKind::Jpeg, &short_length), malformed);
        let mut short_sof = vec![0xFF, 0xD8];
        short_sof.extend(segment(0xC0, &[8, 0, 10, 0, 10]));
        assert_eq!(dimensions(ImageKind::Jpeg, &short_sof), malformed);
    }

    #[test]
    fn reads_each_webp_flavour() {
        let lossy = inspect(&webp_lossy(800, 600), Some("image/webp")).unwrap();
        assert_eq!(
            (lossy.kind, lossy.width, lossy.height),
            (ImageKind::Webp, 800, 600)
        );
        // The top two bits of each VP8 size are the scaling mode, not part of the size.
        assert_eq!(
            dimensions(ImageKind::Webp, &webp_lossy(0xC000 | 800, 0x4000 | 600)),
            Ok((800, 600))
        );
        assert_eq!(
            dimensions(ImageKind::Webp, &webp_lossless(1024, 768)),
            Ok((1024, 768))
        );
        assert_eq!(
            dimensions(ImageKind::Webp, &webp_lossless(16384, 1)),
            Ok((16384, 1))
        );
        assert_eq!(
            dimensions(ImageKind::Webp, &webp_extended(4096, 3000)),
            Ok((4096, 3000))
        );
        assert_eq!(
            dimensions(ImageKind::Webp, &webp_extended(1 << 24, 1)),
            Ok((1 << 24, 1))
        );
    }

    #[test]
    fn malformed_webp_chunks_are_refused() {
        let malformed = Err(UploadError::MalformedHeader {
            kind: ImageKind::Webp,
        });
        let mut interframe = webp_lossy(10, 10);
        interframe[20] |= 1;
        assert_eq!(dimensions(ImageKind::Webp, &interframe), malformed);
        let mut no_start_code = webp_lossy(10, 10);
        no_start_code[23] = 0;
        assert_eq!(dimensions(ImageKind::Webp, &no_start_code), malformed);
        let mut bad_signature = webp_lossless(10, 10);
        bad_signature[20] = 0x2E;
        assert_eq!(dimensions(ImageKind::Webp, &bad_signature), malformed);
        let mut bad_version = webp_lossless(10, 10);
        bad_version[24] |= 0x20;
        assert_eq!(dimensions(ImageKind::Webp, &bad_version), malformed);
        assert_eq!(
            dimensions(ImageKind::Webp, &riff(b"ALPH", &[0; 16])),
            malformed
        );
    }

    #[test]
    fn truncated_headers_are_malformed_at_every_length() {
        let images = [
            png(10, 10),
            jpeg(10, 10),
            webp_lossy(10, 10),
            webp_lossless(10, 10),
            webp_extended(10, 10),
        ];
        for image in images {
            let kind = sniff(&image).unwrap();
            let needed = (0..=image.len())
                .find(|&n| dimensions(kind, &image[..n]).is_ok())
                .unwrap();
            for n in 0..needed {
                let cut = &image[..n];
                assert_eq!(
                    dimensions(kind, cut),
                    Err(UploadError::MalformedHeader { kind }),
                    "{kind} cut at {n}"
                );
                assert_eq!(
                    inspect(cut, None).unwrap_err().code(),
                    ErrorCode::InvalidImageFormat
                );
            }
        }
    }

    #[test]
    fn declared_type_must_agree_with_the_magic_bytes() {
        assert_eq!(
            inspect(&png(10, 10), Some("image/jpeg")),
            Err(UploadError::TypeMismatch {
                declared: ImageKind::Jpeg,
                actual: ImageKind::Png
            })
        );
        assert_eq!(
            inspect(&jpeg(10, 10), Some("image/webp")),
            Err(UploadError::TypeMismatch {
                declared: ImageKind::Webp,
                actual: ImageKind::Jpeg
            })
        );
        assert_eq!(
            inspect(&png(10, 10), Some("image/gif")),
            Err(UploadError::UnsupportedDeclaredType)
        );
        assert_eq!(
            inspect(&png(10, 10), Some("text/html")).unwrap_err().code(),
            ErrorCode::InvalidImageFormat
        );
        assert_eq!(
            inspect(&jpeg(10, 10), Some("image/jpg")).unwrap().kind,
            ImageKind::Jpeg
        );
        assert_eq!(inspect(&png(10, 10), None).unwrap().kind, ImageKind::Png);
        let gif = b"GIF89a\x0a\x00\x0a\x00\x00\x00\x00";
        assert_eq!(
            inspect(gif, Some("image/gif")),
            Err(UploadError::NotAnImage)
        );
        assert_eq!(inspect(gif, None), Err(UploadError::NotAnImage));
        assert_eq!(
            UploadError::NotAnImage.code(),
            ErrorCode::InvalidImageFormat
        );
    }

    #[test]
    fn dimension_limit_is_inclusive() {
        assert_eq!(
            inspect(&png(4096, 4096), None).map(|i| (i.width, i.height)),
            Ok((4096, 4096))
        );
        assert_eq!(
            inspect(&png(4097, 1), None),
            Err(UploadError::DimensionsTooLarge {
                width: 4097,
                height: 1
            })
        );
        assert_eq!(
            inspect(&png(1, 4097), None),
            Err(UploadError::DimensionsTooLarge {
                width: 1,
                height: 4097
            })
        );
        assert!(inspect(&jpeg(4096, 4096), None).is_ok());
        assert_eq!(
            inspect(&jpeg(4097, 4096), None).unwrap_err().code(),
            ErrorCode::ImageTooLarge
        );
        assert!(inspect(&webp_extended(4096, 4096), None).is_ok());
        assert_eq!(
            inspect(&webp_extended(4096, 4097), None)
                .unwrap_err()
                .code(),
            ErrorCode::ImageTooLarge
        );
        assert_eq!(
            inspect(&webp_lossless(4097, 2), None).unwrap_err().code(),
            ErrorCode::ImageTooLarge
        );
        assert_eq!(
            inspect(&webp_lossy(5000, 10), None).unwrap_err().code(),
            ErrorCode::ImageTooLarge
        );
    }

    #[test]
    fn a_decompression_bomb_header_is_refused_from_24_bytes() {
        // 50000 x 50000 RGBA would be 10 GB decoded; the 33-byte header alone decides.
        let bomb = png(50_000, 50_000);
        assert_eq!(bomb.len(), 33);
        let refused = inspect(&bomb, Some("image/png")).unwrap_err();
        assert_eq!(
            refused,
            UploadError::DimensionsTooLarge {
                width: 50_000,
                height: 50_000
            }
        );
        assert_eq!(refused.code(), ErrorCode::ImageTooLarge);
        assert_eq!(
            inspect(&png(u32::MAX, u32::MAX), None).unwrap_err().code(),
            ErrorCode::ImageTooLarge
        );
    }

    #[test]
    fn zero_dimensions_are_invalid() {
        assert_eq!(inspect(&png(0, 10), None), Err(UploadError::ZeroDimension));
        assert_eq!(inspect(&jpeg(10, 0), None), Err(UploadError::ZeroDimension));
        assert_eq!(
            inspect(&webp_lossy(0, 0), None),
            Err(UploadError::ZeroDimension)
        );
        assert_eq!(
            UploadError::ZeroDimension.code(),
            ErrorCode::InvalidImageFormat
        );
    }

    #[test]
    fn buffered_body_over_the_limit_is_too_large() {
        let mut body = png(10, 10);
        body.resize(usize::try_from(MAX_UPLOAD_BYTES).unwrap(), 0);
        assert!(inspect(&body, None).is_ok());
        body.push(0);
        let refused = inspect(&body, None).unwrap_err();
        assert_eq!(
            refused,
            UploadError::TooLarge {
                limit: MAX_UPLOAD_BYTES
            }
        );
        assert_eq!(refused.code(), ErrorCode::PayloadTooLarge);
    }

    #[test]
    fn streaming_counter_stops_at_the_limit() {
        assert_eq!(MAX_UPLOAD_BYTES, 10_485_760);
        let mut budget = BodyLimit::for_upload();
        for _ in 0..10 {
            budget.push(1024 * 1024).unwrap();
        }
        assert_eq!(budget.received(), MAX_UPLOAD_BYTES);
        assert_eq!(budget.remaining(), 0);
        budget.push(0).unwrap();
        let refused = budget.push(1).unwrap_err();
        assert_eq!(refused.code(), ErrorCode::PayloadTooLarge);
        assert_eq!(
            budget.push(0),
            Err(UploadError::TooLarge {
                limit: MAX_UPLOAD_BYTES
            })
        );

        let mut small = BodyLimit::new(100);
        assert_eq!(small.push(60), Ok(()));
        assert_eq!(small.remaining(), 40);
        assert_eq!(small.push(41), Err(UploadError::TooLarge { limit: 100 }));
        let mut huge = BodyLimit::new(u64::MAX);
        huge.push(usize::MAX).unwrap();
        huge.push(usize::MAX).unwrap();
        assert_eq!(huge.received(), u64::MAX);
    }

    #[test]
    fn declared_content_length_is_checked_before_reading() {
        let budget = BodyLimit::for_upload();
        assert_eq!(budget.check_declared_length(MAX_UPLOAD_BYTES), Ok(()));
        assert_eq!(
            budget.check_declared_length(MAX_UPLOAD_BYTES + 1),
            Err(UploadError::TooLarge {
                limit: MAX_UPLOAD_BYTES
            })
        );
    }

    proptest! {
        #[test]
        fn inspect_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512), declared in proptest::option::of(".{0,40}")) {
            let _ = inspect(&bytes, declared.as_deref());
        }

        #[test]
        fn inspect_never_panics_after_a_valid_signature(tail in proptest::collection::vec(any::<u8>(), 0..256), which in 0usize..3) {
            let mut bytes = match which {
                0 => vec![0xFF, 0xD8, 0xFF],
                1 => PNG_SIGNATURE.to_vec(),
                _ => b"RIFF\0\0\0\0WEBP".to_vec(),
            };
            bytes.extend(tail);
            let kind = sniff(&bytes).unwrap();
            let result = inspect(&bytes, Some(kind.mime()));
            if let Ok(info) = result {
                prop_assert!(info.width >= 1 && info.width <= MAX_IMAGE_DIMENSION);
                prop_assert!(info.height >= 1 && info.height <= MAX_IMAGE_DIMENSION);
            }
        }
    }
}
