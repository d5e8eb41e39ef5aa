//! Image validation by content: sniff the magic bytes, read the header, bound bytes and pixels,
//! find where the image really ends (bytes after it mean a truncated file or a polyglot) and
//! decode it fully, so that only a well-formed JPEG, PNG or WebP is ever accepted.

use crate::domain::file::AcceptedImage;
use crate::domain::job_error::JobErrorCode;
use image::{ImageDecoder, ImageFormat, ImageReader, Limits};
use sha2::{Digest, Sha256};
use std::io::Cursor;

/// The image formats we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    Jpeg,
    Png,
    Webp,
}

impl ImageKind {
    pub const ALL: [ImageKind; 3] = [Self::Jpeg, Self::Png, Self::Webp];

    /// The filename extension a file of this kind is stored under.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            Self::Png => "png",
            Self::Webp => "webp",
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Webp => "image/webp",
        }
    }

    fn format(self) -> ImageFormat {
        match self {
            Self::Jpeg => ImageFormat::Jpeg,
            Self::Png => ImageFormat::Png,
            Self::Webp => ImageFormat::WebP,
        }
    }

    /// The accepted kind for a declared MIME type (parameters and case ignored).
    pub fn from_mime(declared: &str) -> Option<Self> {
        let essence = declared.split(';').next()?.trim().to_ascii_lowercase();
        match essence.as_str() {
            "image/jpeg" | "image/jpg" | "image/pjpeg" => Some(Self::Jpeg),
            "image/png" => Some(Self::Png),
            "image/webp" => Some(Self::Webp),
            _ => None,
        }
    }

    /// The accepted kind for a filename extension.
    pub fn from_extension(ext: &str) -> Option<Self> {
        match ext.to_ascii_lowercase().as_str() {
            "jpg" | "jpeg" | "jpe" => Some(Self::Jpeg),
            "png" => Some(Self::Png),
            "webp" => Some(Self::Webp),
            _ => None,
        }
    }

    /// The kind announced by the first bytes of a file.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Self::Jpeg)
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Self::Png)
        } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Some(Self::Webp)
        } else {
            None
        }
    }
}

/// Image formats we recognise but do not accept, so the error can name them.
fn sniff_unsupported(bytes: &[u8]) -> Option<&'static str> {
    const SIGNATURES: &[(&[u8], &str)] = &[
        (b"GIF87a", "GIF"),
        (b"GIF89a", "GIF"),
        (b"BM", "BMP"),
        (b"II*\0", "TIFF"),
        (b"MM\0*", "TIFF"),
        (b"%PDF", "PDF"),
        (b"\0\0\x01\0", "ICO"),
        (b"8BPS", "PSD"),
    ];
    if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        return Some(match &bytes[8..12] {
            b"heic" | b"heix" | b"mif1" | b"msf1" => "HEIC",
            b"avif" | b"avis" => "AVIF",
            _ => "ISO media",
        });
    }
    SIGNATURES
        .iter()
        .find(|(magic, _)| bytes.starts_with(magic))
        .map(|(_, name)| *name)
}

/// Why bytes were refused. Each has a stable error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageRejection {
    #[error("the file is empty")]
    Empty,
    #[error("the file is {size} bytes; the limit is {limit} bytes")]
    TooLarge { size: u64, limit: u64 },
    #[error("the file is not an image (allowed: JPEG, PNG, WebP)")]
    NotAnImage,
    #[error("{format} images are not supported (allowed: JPEG, PNG, WebP)")]
    Unsupported { format: &'static str },
    #[error("the image is {width}x{height} pixels; the limit is {limit} pixels")]
    TooManyPixels { width: u32, height: u32, limit: u64 },
    /// Decoding would take more memory than allowed (pixels x channels x bit depth): a
    /// decompression bomb, or simply too deep an image.
    #[error("the image decodes to {needed} bytes; the limit is {limit} bytes")]
    DecodesTooLarge { needed: u64, limit: u64 },
    #[error("the image is corrupt or truncated: {reason}")]
    Corrupt { reason: String },
    #[error("{extra} bytes follow the end of the image (truncated upload or polyglot file)")]
    TrailingData { extra: u64 },
}

impl ImageRejection {
    /// The stable `error_code` of this rejection (a request's, and its jobs').
    pub fn code(&self) -> JobErrorCode {
        match self {
            Self::Empty => JobErrorCode::EmptyFile,
            Self::TooLarge { .. } => JobErrorCode::FileTooLarge,
            Self::NotAnImage | Self::Unsupported { .. } => JobErrorCode::InvalidFileType,
            Self::TooManyPixels { .. } | Self::DecodesTooLarge { .. } => {
                JobErrorCode::ImageTooLarge
            }
            Self::Corrupt { .. } | Self::TrailingData { .. } => JobErrorCode::InvalidImage,
        }
    }
}

/// Size limits applied to every image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    pub max_bytes: u64,
    pub max_pixels: u64,
    /// Largest decoded image, in bytes (width x height x channels x bytes per channel).
    pub max_decode_bytes: u64,
}

/// Validates `bytes` completely and describes the accepted image.
pub fn inspect_image(bytes: &[u8], limits: ImageLimits) -> Result<AcceptedImage, ImageRejection> {
    let size = bytes.len() as u64;
    if bytes.is_empty() {
        return Err(ImageRejection::Empty);
    }
    if size > limits.max_bytes {
        return Err(ImageRejection::TooLarge {
            size,
            limit: limits.max_bytes,
        });
    }
    let Some(kind) = ImageKind::sniff(bytes) else {
        return Err(match sniff_unsupported(bytes) {
            Some(format) => ImageRejection::Unsupported { format },
            None => ImageRejection::NotAnImage,
        });
    };
    let corrupt = |reason: String| ImageRejection::Corrupt { reason };
    let (width, height) = declared_dimensions(kind, bytes).map_err(corrupt)?;
    if width == 0 || height == 0 {
        return Err(corrupt("zero width or height".to_owned()));
    }
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(ImageRejection::TooManyPixels {
            width,
            height,
            limit: limits.max_pixels,
        });
    }
    let end = image_end(kind, bytes).map_err(|reason| corrupt(reason.to_owned()))?;
    let trailing = &bytes[end..];
    if trailing.iter().any(|&b| b != 0) {
        return Err(ImageRejection::TrailingData {
            extra: trailing.len() as u64,
        });
    }
    let mut decoder = ImageReader::with_format(Cursor::new(bytes), kind.format())
        .into_decoder()
        .map_err(|e| corrupt(e.to_string()))?;
    let needed = decoder.total_bytes();
    if needed > limits.max_decode_bytes {
        return Err(ImageRejection::DecodesTooLarge {
            needed,
            limit: limits.max_decode_bytes,
        });
    }
    decoder
        .set_limits(decode_limits(limits))
        .map_err(|e| corrupt(e.to_string()))?;
    image::DynamicImage::from_decoder(decoder).map_err(|e| corrupt(e.to_string()))?;
    Ok(AcceptedImage {
        content_type: kind.mime().to_owned(),
        extension: kind.extension(),
        size,
        sha256: hex::encode(Sha256::digest(bytes)),
        width,
        height,
    })
}

/// The dimensions the header declares, read without decoding pixels.
fn declared_dimensions(kind: ImageKind, bytes: &[u8]) -> Result<(u32, u32), String> {
    if kind == ImageKind::Png {
        // The PNG decoder wants to see image data before it reports a size, so read IHDR.
        if bytes.get(12..16) != Some(b"IHDR".as_slice()) {
            return Err("PNG does not start with an IHDR chunk".to_owned());
        }
        let width = be_u32(bytes, 16).ok_or("PNG header cut short")?;
        let height = be_u32(bytes, 20).ok_or("PNG header cut short")?;
        return Ok((width as u32, height as u32));
    }
    ImageReader::with_format(Cursor::new(bytes), kind.format())
        .into_dimensions()
        .map_err(|e| e.to_string())
}

/// Decoder limits: the decoded image and the decoder's own buffers within `max_decode_bytes`.
pub fn decode_limits(limits: ImageLimits) -> Limits {
    let mut decode = Limits::default();
    decode.max_alloc = Some(limits.max_decode_bytes);
    decode
}

/// Offset just past the last byte of the image, walking the container structure.
fn image_end(kind: ImageKind, bytes: &[u8]) -> Result<usize, &'static str> {
    match kind {
        ImageKind::Png => png_end(bytes),
        ImageKind::Jpeg => jpeg_end(bytes),
        ImageKind::Webp => webp_end(bytes),
    }
}

fn be_u32(bytes: &[u8], at: usize) -> Option<usize> {
    let b = bytes.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
}

fn png_end(bytes: &[u8]) -> Result<usize, &'static str> {
    let mut at = 8;
    loop {
        let len = be_u32(bytes, at).ok_or("PNG chunk header cut short")?;
        let kind = bytes
            .get(at + 4..at + 8)
            .ok_or("PNG chunk header cut short")?;
        let next = at
            .checked_add(12)
            .and_then(|n| n.checked_add(len))
            .ok_or("PNG chunk length overflows")?;
        if next > bytes.len() {
            return Err("PNG chunk runs past the end of the file");
        }
        if kind == b"IEND" {
            return Ok(next);
        }
        at = next;
    }
}

fn jpeg_end(bytes: &[u8]) -> Result<usize, &'static str> {
    const CUT: &str = "JPEG ends before its end-of-image marker";
    let mut at = 2;
    loop {
        // Skip fill bytes before a marker.
        while bytes.get(at) == Some(&0xFF) && bytes.get(at + 1) == Some(&0xFF) {
            at += 1;
        }
        if bytes.get(at) != Some(&0xFF) {
            return Err("JPEG marker expected");
        }
        let marker = *bytes.get(at + 1).ok_or(CUT)?;
        at += 2;
        match marker {
            0xD9 => return Ok(at),
            0x01 | 0xD0..=0xD7 => continue,
            _ => {}
        }
        let len = bytes
            .get(at..at + 2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
            .ok_or(CUT)?;
        if len < 2 {
            return Err("JPEG segment length is invalid");
        }
        at += len;
        if at > bytes.len() {
            return Err(CUT);
        }
        if marker == 0xDA {
            // Entropy-coded data: runs until a marker other than a stuffed byte or a restart.
            loop {
                let ff = bytes[at..].iter().position(|&b| b == 0xFF).ok_or(CUT)?;
                at += ff;
                match bytes.get(at + 1) {
                    None => return Err(CUT),
                    Some(0x00) | Some(0xD0..=0xD7) | Some(0xFF) => at += 1,
                    Some(_) => break,
                }
            }
        }
    }
}

fn webp_end(bytes: &[u8]) -> Result<usize, &'static str> {
    let b = bytes.get(4..8).ok_or("WebP header cut short")?;
    let riff = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let end = riff.checked_add(8).ok_or("WebP size overflows")?;
    if end > bytes.len() {
        return Err("WebP data runs past the end of the file");
    }
    // An odd-sized payload may carry one padding byte.
    Ok(if riff % 2 == 1 && end < bytes.len() {
        end + 1
    } else {
        end
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Rgb, Rgba};

    const LIMITS: ImageLimits = ImageLimits {
        max_bytes: 1 << 20,
        max_pixels: 40_000_000,
        max_decode_bytes: 64 << 20,
    };

    fn encode(format: ImageFormat, alpha: bool) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        if alpha {
            ImageBuffer::from_fn(40, 30, |x, y| Rgba([x as u8 * 6, y as u8 * 8, 90, 200]))
                .write_to(&mut out, format)
                .unwrap();
        } else {
            ImageBuffer::from_fn(40, 30, |x, y| Rgb([x as u8 * 6, y as u8 * 8, 90]))
                .write_to(&mut out, format)
                .unwrap();
        }
        out.into_inner()
    }

    #[test]
    fn accepts_real_jpeg_png_webp_and_rgba() {
        for (format, mime, alpha) in [
            (ImageFormat::Jpeg, "image/jpeg", false),
            (ImageFormat::Png, "image/png", false),
            (ImageFormat::Png, "image/png", true),
            (ImageFormat::WebP, "image/webp", false),
            (ImageFormat::WebP, "image/webp", true),
        ] {
            let bytes = encode(format, alpha);
            let img = inspect_image(&bytes, LIMITS).unwrap();
            assert_eq!(
                (img.content_type.as_str(), img.width, img.height),
                (mime, 40, 30)
            );
            assert_eq!(img.size, bytes.len() as u64);
            assert_eq!(img.sha256.len(), 64);
            let kind = ImageKind::from_mime(mime).unwrap();
            assert_eq!(img.extension, kind.extension());
        }
        let extensions: Vec<&str> = ImageKind::ALL.iter().map(|k| k.extension()).collect();
        assert_eq!(extensions, ["jpg", "png", "webp"]);
    }

    /// Exactly at each limit is within it.
    #[test]
    fn an_image_exactly_at_its_pixel_and_decode_limits_passes() {
        for format in [ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::WebP] {
            let bytes = encode(format, false);
            let exact = ImageLimits {
                max_pixels: 40 * 30,
                max_decode_bytes: 40 * 30 * 3,
                ..LIMITS
            };
            assert!(inspect_image(&bytes, exact).is_ok(), "{format:?}");
            let fewer_pixels = ImageLimits {
                max_pixels: 40 * 30 - 1,
                ..exact
            };
            assert_eq!(
                inspect_image(&bytes, fewer_pixels).unwrap_err().code(),
                "IMAGE_TOO_LARGE"
            );
            let fewer_bytes = ImageLimits {
                max_decode_bytes: 40 * 30 * 3 - 1,
                ..exact
            };
            assert!(matches!(
                inspect_image(&bytes, fewer_bytes),
                Err(ImageRejection::DecodesTooLarge { needed: 3600, .. })
            ));
        }
    }

    /// A PNG whose header says it has no rows (or no columns) is corrupt, said as such.
    #[test]
    fn an_image_without_width_or_height_is_corrupt() {
        for (width, height) in [(0u32, 5u32), (5, 0)] {
            let mut ihdr = width.to_be_bytes().to_vec();
            ihdr.extend_from_slice(&height.to_be_bytes());
            ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
            let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
            png.extend(chunk(b"IHDR", &ihdr));
            png.extend(chunk(b"IEND", b""));
            assert_eq!(
                inspect_image(&png, LIMITS),
                Err(ImageRejection::Corrupt {
                    reason: "zero width or height".into()
                })
            );
        }
    }

    /// The JPEG walk steps over fill bytes before a marker and over markers without a length
    /// (TEM, RST), as decoders do, and finds the end-of-image marker.
    #[test]
    fn the_jpeg_walk_skips_fill_bytes_and_markers_without_a_length() {
        let jpeg = encode(ImageFormat::Jpeg, false);
        assert_eq!(jpeg_end(&jpeg), Ok(jpeg.len()));
        // SOI, then fill bytes, a TEM and an RST before the encoder's first segment.
        let mut padded = jpeg[..2].to_vec();
        padded.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0x01, 0xFF, 0xD3]);
        padded.extend_from_slice(&jpeg[2..]);
        assert_eq!(jpeg_end(&padded), Ok(padded.len()));
        // An empty segment (its length counts only itself) is fine; a shorter length is not.
        let mut empty_app = jpeg[..2].to_vec();
        empty_app.extend_from_slice(&[0xFF, 0xE5, 0x00, 0x02]);
        empty_app.extend_from_slice(&jpeg[2..]);
        assert_eq!(jpeg_end(&empty_app), Ok(empty_app.len()));
        for short in [0u8, 1] {
            let mut bad = jpeg[..2].to_vec();
            bad.extend_from_slice(&[0xFF, 0xE5, 0x00, short]);
            bad.extend_from_slice(&jpeg[2..]);
            assert_eq!(jpeg_end(&bad), Err("JPEG segment length is invalid"));
        }
        // A segment that runs past the end is cut short; one that ends at the end lacks the
        // end-of-image marker.
        let past = [0xFF, 0xD8, 0xFF, 0xE5, 0x00, 0x08, 1, 2];
        assert_eq!(
            jpeg_end(&past),
            Err("JPEG ends before its end-of-image marker")
        );
        let flush = [0xFF, 0xD8, 0xFF, 0xE5, 0x00, 0x04, 1, 2];
        assert_eq!(jpeg_end(&flush), Err("JPEG marker expected"));
        // Entropy-coded data runs past stuffed bytes (FF 00), restart markers and fill bytes
        // to the next real marker.
        let scan = [
            0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02, 0x11, 0xFF, 0x00, 0x22, 0xFF, 0xD3, 0x33, 0xFF,
            0xFF, 0xD9,
        ];
        assert_eq!(jpeg_end(&scan), Ok(scan.len()));
        // Fill bytes right before the end-of-image marker.
        let mut filled = jpeg[..jpeg.len() - 2].to_vec();
        filled.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xD9]);
        assert_eq!(jpeg_end(&filled), Ok(filled.len()));
    }

    #[test]
    fn rejects_empty_and_non_images() {
        assert_eq!(inspect_image(b"", LIMITS), Err(ImageRejection::Empty));
        assert_eq!(
            inspect_image(b"<html><script>alert(1)</script>", LIMITS)
                .unwrap_err()
                .code(),
            "INVALID_FILE_TYPE"
        );
        assert_eq!(
            inspect_image(b"GIF89a\x01\x00\x01\x00", LIMITS),
            Err(ImageRejection::Unsupported { format: "GIF" })
        );
        assert_eq!(
            inspect_image(b"<html><script>alert(1)</script>", LIMITS),
            Err(ImageRejection::NotAnImage)
        );
        for (brand, format) in [
            (b"heic", "HEIC"),
            (b"mif1", "HEIC"),
            (b"avif", "AVIF"),
            (b"mp42", "ISO media"),
        ] {
            let mut bytes = b"\0\0\0\x18ftyp".to_vec();
            bytes.extend_from_slice(brand);
            bytes.extend_from_slice(&[0; 12]);
            assert_eq!(
                inspect_image(&bytes, LIMITS),
                Err(ImageRejection::Unsupported { format }),
                "{format}"
            );
        }
    }

    #[test]
    fn one_byte_over_the_limit_is_too_large() {
        let bytes = encode(ImageFormat::Png, false);
        let limits = ImageLimits {
            max_bytes: bytes.len() as u64 - 1,
            ..LIMITS
        };
        assert_eq!(
            inspect_image(&bytes, limits).unwrap_err().code(),
            "FILE_TOO_LARGE"
        );
        let exact = ImageLimits {
            max_bytes: bytes.len() as u64,
            ..LIMITS
        };
        assert!(inspect_image(&bytes, exact).is_ok());
    }

    #[test]
    fn truncated_files_are_corrupt() {
        for format in [ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::WebP] {
            let bytes = encode(format, false);
            for cut in [bytes.len() / 2, bytes.len() - 1] {
                let err = inspect_image(&bytes[..cut], LIMITS).unwrap_err();
                assert_eq!(
                    err.code(),
                    "INVALID_IMAGE",
                    "{format:?} cut at {cut}: {err}"
                );
            }
        }
    }

    #[test]
    fn polyglots_with_payload_after_the_image_are_refused() {
        for format in [ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::WebP] {
            let mut bytes = encode(format, false);
            bytes.extend_from_slice(b"PK\x03\x04<html><script>alert(1)</script></html>");
            assert!(
                matches!(
                    inspect_image(&bytes, LIMITS),
                    Err(ImageRejection::TrailingData { .. })
                ),
                "{format:?}"
            );
        }
        // Zero padding after the end is harmless and common.
        let mut padded = encode(ImageFormat::Jpeg, false);
        padded.extend_from_slice(&[0; 16]);
        assert!(inspect_image(&padded, LIMITS).is_ok());
    }

    /// A PNG whose header declares 100000x100000 pixels is refused from the header alone.
    #[test]
    fn decompression_bomb_header_is_refused_before_decoding() {
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&100_000u32.to_be_bytes());
        ihdr.extend_from_slice(&100_000u32.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        png.extend_from_slice(&13u32.to_be_bytes());
        png.extend_from_slice(b"IHDR");
        png.extend_from_slice(&ihdr);
        let mut crc_input = b"IHDR".to_vec();
        crc_input.extend_from_slice(&ihdr);
        png.extend_from_slice(&crc32(&crc_input).to_be_bytes());
        png.extend_from_slice(&0u32.to_be_bytes());
        png.extend_from_slice(b"IEND");
        png.extend_from_slice(&crc32(b"IEND").to_be_bytes());
        assert_eq!(
            inspect_image(&png, LIMITS),
            Err(ImageRejection::TooManyPixels {
                width: 100_000,
                height: 100_000,
                limit: LIMITS.max_pixels
            })
        );
    }

    /// A PNG of a few hundred bytes whose header declares 6000x6000 16-bit RGBA: within the
    /// pixel limit, but 288 MB once decoded. Refused from the header, before any allocation.
    #[test]
    fn a_deep_image_over_the_decode_budget_is_refused_before_decoding() {
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&6000u32.to_be_bytes());
        ihdr.extend_from_slice(&6000u32.to_be_bytes());
        ihdr.extend_from_slice(&[16, 6, 0, 0, 0]);
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend(chunk(b"IHDR", &ihdr));
        png.extend(chunk(
            b"IDAT",
            &[0x78, 0x9c, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01],
        ));
        png.extend(chunk(b"IEND", b""));
        assert_eq!(
            inspect_image(&png, LIMITS),
            Err(ImageRejection::DecodesTooLarge {
                needed: 6000 * 6000 * 8,
                limit: LIMITS.max_decode_bytes
            })
        );
        assert_eq!(
            inspect_image(&png, LIMITS).unwrap_err().code(),
            "IMAGE_TOO_LARGE"
        );
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &byte in data {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    /// A RIFF payload of odd size may be followed by one padding byte, which belongs to it.
    #[test]
    fn the_webp_walk_takes_the_padding_byte_of_an_odd_payload_only() {
        let riff = |payload: &[u8], after: &[u8]| {
            let mut out = b"RIFF".to_vec();
            out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            out.extend_from_slice(payload);
            out.extend_from_slice(after);
            out
        };
        assert_eq!(webp_end(&riff(b"WEBPx", &[7])), Ok(14));
        assert_eq!(webp_end(&riff(b"WEBPx", &[])), Ok(13));
        assert_eq!(webp_end(&riff(b"WEBP", &[7])), Ok(12));
        assert_eq!(webp_end(&riff(b"WEBPxyz", &[7, 7])), Ok(16));
        assert_eq!(
            webp_end(&riff(b"WEBP", &[])[..10]),
            Err("WebP data runs past the end of the file")
        );
    }

    /// A PNG chunk: length, kind, data and CRC.
    fn chunk(kind: &[u8], data: &[u8]) -> Vec<u8> {
        let mut out = (data.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let mut crc_input = kind.to_vec();
        crc_input.extend_from_slice(data);
        out.extend_from_slice(&crc32(&crc_input).to_be_bytes());
        out
    }

    #[test]
    fn mime_and_extension_mapping() {
        for kind in ImageKind::ALL {
            assert_eq!(ImageKind::from_mime(kind.mime()), Some(kind));
            assert_eq!(ImageKind::from_extension(kind.extension()), Some(kind));
        }
        assert_eq!(ImageKind::from_extension("WEBP"), Some(ImageKind::Webp));
        assert_eq!(
            ImageKind::from_mime("IMAGE/JPEG; charset=x"),
            Some(ImageKind::Jpeg)
        );
        assert_eq!(ImageKind::from_mime("image/gif"), None);
        assert_eq!(ImageKind::from_extension("JPG"), Some(ImageKind::Jpeg));
        assert_eq!(ImageKind::from_extension("exe"), None);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..2048)) {
            let _ = inspect_image(&bytes, LIMITS);
        }

        #[test]
        fn arbitrary_bytes_behind_a_png_signature_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
            png.extend_from_slice(&bytes);
            let _ = inspect_image(&png, LIMITS);
        }

        /// Real JPEG, PNG and WebP files with bytes flipped, cut or inserted: never a panic,
        /// and what passes is a whole image within the limits.
        #[test]
        fn mutated_images_never_panic_and_only_whole_images_pass(
            format in 0usize..3,
            edits in proptest::collection::vec(
                (proptest::sample::select(vec![0u8, 1, 2]), proptest::num::usize::ANY, proptest::num::u8::ANY),
                1..6,
            ),
        ) {
            let mut bytes = encode([ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::WebP][format], format == 1);
            for (op, at, value) in edits {
                let at = at % bytes.len().max(1);
                match op {
                    0 => bytes[at] ^= value | 1,
                    1 => bytes.truncate(at.max(1)),
                    _ => bytes.insert(at, value),
                }
            }
            if let Ok(image) = inspect_image(&bytes, LIMITS) {
                proptest::prop_assert_eq!(image.size, bytes.len() as u64);
                proptest::prop_assert!(u64::from(image.width) * u64::from(image.height) <= LIMITS.max_pixels);
                proptest::prop_assert!(image::load_from_memory(&bytes).is_ok());
            }
        }
    }
}
