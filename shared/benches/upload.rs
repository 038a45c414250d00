//! Upload inspection and strict body parsing on the sizes the edge sees per request.

use criterion::{Criterion, criterion_group, criterion_main};
use shared::body::{ProcessPointsRequest, parse_valid};
use shared::upload::inspect;
use std::hint::black_box;

/// A 4 KB JPEG-like buffer: SOI, JFIF, Exif and ICC APP segments, a quantisation table, then
/// SOF0 and the start of a scan.
fn jpeg_with_app_segments() -> Vec<u8> {
    fn segment(bytes: &mut Vec<u8>, marker: u8, payload_len: usize) {
        bytes.extend_from_slice(&[0xFF, marker]);
        bytes.extend_from_slice(&u16::try_from(payload_len + 2).unwrap().to_be_bytes());
        bytes.extend(std::iter::repeat_n(0x20, payload_len));
    }
    let mut bytes = vec![0xFF, 0xD8];
    segment(&mut bytes, 0xE0, 14);
    segment(&mut bytes, 0xE1, 1_200);
    segment(&mut bytes, 0xE2, 600);
    segment(&mut bytes, 0xDB, 130);
    bytes.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x11, 8, 0x0B, 0xB8, 0x0F, 0xA0, 3]);
    bytes.extend_from_slice(&[1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
    bytes.extend_from_slice(&[
        0xFF, 0xDA, 0x00, 0x0C, 3, 1, 0, 2, 0x11, 3, 0x11, 0, 0x3F, 0,
    ]);
    bytes.resize(4 * 1024, 0x5A);
    bytes
}

fn png_header() -> Vec<u8> {
    let mut bytes = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    bytes.extend_from_slice(&13u32.to_be_bytes());
    bytes.extend_from_slice(b"IHDR");
    bytes.extend_from_slice(&1920u32.to_be_bytes());
    bytes.extend_from_slice(&1080u32.to_be_bytes());
    bytes.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
    bytes
}

fn points_body(count: usize, dims: usize) -> Vec<u8> {
    let points: Vec<Vec<f64>> = (0..count)
        .map(|i| {
            (0..dims)
                .map(|j| (i * dims + j) as f64 * 0.001 - 7.5)
                .collect()
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "points": points, "stream": "bench" })).unwrap()
}

fn upload(c: &mut Criterion) {
    let jpeg = jpeg_with_app_segments();
    assert_eq!(
        inspect(&jpeg, Some("image/jpeg")).map(|i| (i.width, i.height)),
        Ok((4000, 3000))
    );
    c.bench_function("inspect jpeg 4 KB, SOF0 after APP0/APP1/APP2/DQT", |b| {
        b.iter(|| inspect(black_box(&jpeg), Some("image/jpeg")))
    });

    let png = png_header();
    assert_eq!(
        inspect(&png, Some("image/png")).map(|i| (i.width, i.height)),
        Ok((1920, 1080))
    );
    c.bench_function("inspect png header", |b| {
        b.iter(|| inspect(black_box(&png), Some("image/png")))
    });
}

fn points(c: &mut Criterion) {
    let body = points_body(1_000, 16);
    assert_eq!(
        parse_valid::<ProcessPointsRequest>(&body).map(|r| r.points.len()),
        Ok(1_000)
    );
    c.bench_function("parse_valid ProcessPointsRequest 1000 x 16", |b| {
        b.iter(|| parse_valid::<ProcessPointsRequest>(black_box(&body)).is_ok())
    });
}

criterion_group!(benches, upload, points);
criterion_main!(benches);
