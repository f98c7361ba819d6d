//! Images: decoded under limits, re-encoded without their metadata (EXIF, GPS, XMP, comments — and
//! anything appended after the image, as polyglot files do), measured, and thumbnailed.
//!
//! GIFs are kept byte for byte (re-encoding would drop the animation): GIF has no EXIF or GPS
//! block, but its comment and application extensions (XMP among them) stay; the file is served with
//! its image type, `nosniff` and a sandboxing CSP. Animated WebP and PNG keep their first frame only.
//! CPU-heavy: callers run [`process`] on a blocking thread, a few at a time.

use std::io::{BufReader, BufWriter};
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

/// The largest image accepted, in pixels (a 50-megapixel photo; a decompression bomb claims more).
pub const MAX_PIXELS: u64 = 50_000_000;
/// The largest side accepted.
pub const MAX_SIDE: u32 = 16_384;
/// Memory a decode may take.
const MAX_ALLOC: u64 = 512 << 20;
/// The box thumbnails fit in.
pub const THUMBNAIL_SIDE: u32 = 400;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    /// Not an image in a format we take, or a broken one.
    #[error("not a valid image: {0}")]
    Invalid(String),
    /// Over the size limits (a decompression bomb among others).
    #[error("the image is {0}×{1} pixels; at most {MAX_PIXELS} pixels and {MAX_SIDE} per side")]
    TooLarge(u32, u32),
    #[error("temporary storage: {0}")]
    Io(String),
}

/// What [`process`] made.
#[derive(Debug)]
pub struct Processed {
    pub width: u32,
    pub height: u32,
    pub content_type: &'static str,
    /// The image to serve, without metadata; None: serve the upload as it is (GIF).
    pub cleaned: Option<tempfile::TempPath>,
    /// A rendition within [`THUMBNAIL_SIDE`]² and its content type.
    pub thumbnail: Option<(tempfile::TempPath, &'static str)>,
}

/// The formats taken as images; anything else is a plain file.
pub fn format_of(content_type: &str) -> Option<ImageFormat> {
    match content_type {
        "image/png" => Some(ImageFormat::Png),
        "image/jpeg" => Some(ImageFormat::Jpeg),
        "image/gif" => Some(ImageFormat::Gif),
        "image/webp" => Some(ImageFormat::WebP),
        _ => None,
    }
}

fn limits() -> Limits {
    let mut l = Limits::default();
    l.max_image_width = Some(MAX_SIDE);
    l.max_image_height = Some(MAX_SIDE);
    l.max_alloc = Some(MAX_ALLOC);
    l
}

fn reader(path: &Path, format: ImageFormat) -> Result<ImageReader<BufReader<std::fs::File>>, ImageError> {
    let file = std::fs::File::open(path).map_err(|e| ImageError::Io(e.to_string()))?;
    Ok(ImageReader::with_format(BufReader::new(file), format))
}

/// Checks, cleans and thumbnails the image at `path` (its format detected from its bytes); the
/// files it makes go in `dir`.
pub fn process(path: &Path, format: ImageFormat, dir: &Path) -> Result<Processed, ImageError> {
    // The header first (read without limits: it allocates nothing for pixels), so that a bomb is
    // refused, and named, before anything is decoded.
    let (width, height) = reader(path, format)?.into_dimensions().map_err(|e| ImageError::Invalid(e.to_string()))?;
    if width == 0 || height == 0 {
        return Err(ImageError::Invalid("an image without pixels".into()));
    }
    if width > MAX_SIDE || height > MAX_SIDE || u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(ImageError::TooLarge(width, height));
    }
    let too_large_or_invalid = |e: image::ImageError| match e {
        image::ImageError::Limits(_) => ImageError::TooLarge(width, height),
        other => ImageError::Invalid(other.to_string()),
    };
    let mut decoder = reader(path, format)?.into_decoder().map_err(too_large_or_invalid)?;
    decoder.set_limits(limits()).map_err(too_large_or_invalid)?;
    // A phone's photo is stored as the sensor saw it plus an EXIF orientation; the metadata goes,
    // so the pixels are turned the way they are meant to be seen first.
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(too_large_or_invalid)?;
    image.apply_orientation(orientation);
    let (width, height) = (image.width(), image.height());
    let (content_type, cleaned) = match format {
        ImageFormat::Gif => ("image/gif", None),
        ImageFormat::Png => ("image/png", Some(encode(&image, ImageFormat::Png, dir)?)),
        ImageFormat::WebP => ("image/webp", Some(encode(&image, ImageFormat::WebP, dir)?)),
        _ => ("image/jpeg", Some(encode(&image, ImageFormat::Jpeg, dir)?)),
    };
    let thumbnail = if width > THUMBNAIL_SIDE || height > THUMBNAIL_SIDE || format == ImageFormat::Gif {
        let small = image.thumbnail(THUMBNAIL_SIDE, THUMBNAIL_SIDE);
        // Transparency needs PNG; everything else is smaller as JPEG.
        if small.color().has_alpha() {
            Some((encode(&small, ImageFormat::Png, dir)?, "image/png"))
        } else {
            Some((encode(&small, ImageFormat::Jpeg, dir)?, "image/jpeg"))
        }
    } else {
        None
    };
    Ok(Processed { width, height, content_type, cleaned, thumbnail })
}

fn encode(image: &DynamicImage, format: ImageFormat, dir: &Path) -> Result<tempfile::TempPath, ImageError> {
    let io = |e: std::io::Error| ImageError::Io(e.to_string());
    let temp = tempfile::Builder::new().prefix("image-").tempfile_in(dir).map_err(io)?;
    let (file, path) = temp.into_parts();
    let mut out = BufWriter::new(file);
    let result = match format {
        ImageFormat::Jpeg => {
            // JPEG has no alpha; 90 keeps photos visually the same.
            let rgb = DynamicImage::ImageRgb8(image.to_rgb8());
            rgb.write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90))
        }
        other => image.write_to(&mut out, other),
    };
    result.map_err(|e| ImageError::Invalid(e.to_string()))?;
    out.into_inner().map_err(|e| io(e.into_error()))?.sync_all().map_err(io)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_png(dir: &Path, w: u32, h: u32) -> std::path::PathBuf {
        let path = dir.join("in.png");
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 128]));
        img.save_with_format(&path, ImageFormat::Png).unwrap();
        path
    }

    #[test]
    fn a_large_image_is_measured_cleaned_and_thumbnailed_within_the_box() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_png(dir.path(), 1200, 600);
        let p = process(&path, ImageFormat::Png, dir.path()).unwrap();
        assert_eq!((p.width, p.height, p.content_type), (1200, 600, "image/png"));
        let open = |p: &Path| ImageReader::open(p).unwrap().with_guessed_format().unwrap().decode().unwrap();
        let cleaned = open(p.cleaned.as_ref().unwrap());
        assert_eq!((cleaned.width(), cleaned.height()), (1200, 600));
        let (thumb, kind) = p.thumbnail.unwrap();
        let t = open(&thumb);
        assert_eq!((t.width(), t.height(), kind), (400, 200, "image/jpeg"));
    }

    #[test]
    fn exif_and_anything_after_the_image_are_gone_from_a_cleaned_jpeg() {
        let dir = tempfile::tempdir().unwrap();
        let img = image::RgbImage::from_fn(64, 32, |x, _| image::Rgb([x as u8 * 4, 0, 0]));
        let mut jpeg = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut jpeg), ImageFormat::Jpeg).unwrap();
        // An EXIF APP1 segment with a GPS marker after SOI, and an HTML page after EOI (a polyglot).
        let exif = b"Exif\0\0GPSLatitude=48.8566";
        let mut with_exif = vec![0xFF, 0xD8, 0xFF, 0xE1];
        with_exif.extend_from_slice(&((exif.len() + 2) as u16).to_be_bytes());
        with_exif.extend_from_slice(exif);
        with_exif.extend_from_slice(&jpeg[2..]);
        with_exif.extend_from_slice(b"<html><script>alert(1)</script></html>");
        let path = dir.path().join("in.jpg");
        std::fs::write(&path, &with_exif).unwrap();
        let p = process(&path, ImageFormat::Jpeg, dir.path()).unwrap();
        let served = std::fs::read(p.cleaned.unwrap()).unwrap();
        let contains = |needle: &[u8]| served.windows(needle.len()).any(|w| w == needle);
        assert!(!contains(b"GPSLatitude") && !contains(b"Exif"), "metadata stripped");
        assert!(!contains(b"<script>"), "the appended page is gone");
        assert_eq!(image::load_from_memory(&served).unwrap().width(), 64);
    }

    #[test]
    fn a_photo_taken_sideways_is_stored_upright() {
        let dir = tempfile::tempdir().unwrap();
        let img = image::RgbImage::from_fn(64, 32, |x, _| image::Rgb([x as u8 * 4, 0, 0]));
        let mut jpeg = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut jpeg), ImageFormat::Jpeg).unwrap();
        // EXIF with Orientation = 6 (rotate 90° clockwise to view), as phones write it.
        let mut tiff = b"Exif\0\0MM\0\x2a\0\0\0\x08\0\x01".to_vec();
        tiff.extend_from_slice(&[0x01, 0x12, 0x00, 0x03, 0, 0, 0, 1, 0x00, 0x06, 0, 0, 0, 0, 0, 0]);
        let mut with_exif = vec![0xFF, 0xD8, 0xFF, 0xE1];
        with_exif.extend_from_slice(&((tiff.len() + 2) as u16).to_be_bytes());
        with_exif.extend_from_slice(&tiff);
        with_exif.extend_from_slice(&jpeg[2..]);
        let path = dir.path().join("sideways.jpg");
        std::fs::write(&path, &with_exif).unwrap();
        let p = process(&path, ImageFormat::Jpeg, dir.path()).unwrap();
        assert_eq!((p.width, p.height), (32, 64), "turned upright");
        let served = image::load_from_memory(&std::fs::read(p.cleaned.unwrap()).unwrap()).unwrap();
        assert_eq!((served.width(), served.height()), (32, 64));
    }

    #[test]
    fn a_decompression_bomb_is_refused_from_its_header() {
        // A real 1×1 PNG whose header is changed to claim 100,000 × 100,000 pixels (10 gigapixels).
        let dir = tempfile::tempdir().unwrap();
        let mut png = Vec::new();
        image::RgbImage::new(1, 1).write_to(&mut std::io::Cursor::new(&mut png), ImageFormat::Png).unwrap();
        png[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        png[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        let crc = crc32(&png[12..29]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        let path = dir.path().join("bomb.png");
        std::fs::write(&path, &png).unwrap();
        assert_eq!(process(&path, ImageFormat::Png, dir.path()).unwrap_err(), ImageError::TooLarge(100_000, 100_000));
    }

    #[test]
    fn bytes_that_are_not_the_image_they_claim_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fake.png");
        std::fs::write(&path, b"\x89PNG\r\n\x1a\nthis is not really a png").unwrap();
        assert!(matches!(process(&path, ImageFormat::Png, dir.path()), Err(ImageError::Invalid(_))));
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }
}
