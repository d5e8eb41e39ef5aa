//! The built-in generator's geometry, apart from everything else so that it alone is compiled
//! for speed (`opt-level = 3`) while the functions around it are compiled for size: a photo is
//! decoded, its depth estimated (or read from a depth map computed elsewhere), a closed relief
//! mesh built and encoded with the photo as its texture in a glTF 2.0 binary, with a PNG preview
//! of it rendered in software. Pure functions over bytes and image buffers; the `Generator` port
//! around them is `image2model_shared`'s `builtin_generator`.

pub mod depth;
pub mod glb;
pub mod mesh;
pub mod preview;

/// Side of the preview image, in pixels.
pub const PREVIEW_SIZE: u32 = 512;

/// A model and its preview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    pub glb: Vec<u8>,
    /// A PNG of the textured model from three-quarters above.
    pub preview_png: Vec<u8>,
}

fn model(
    mesh: &mesh::Mesh,
    photo: &RgbaImage,
    texture: (&[u8], &str),
) -> Result<Model, ReliefError> {
    let preview_png = preview::render_png(mesh, photo, PREVIEW_SIZE)
        .map_err(|e| ReliefError::Encoding(e.to_string()))?;
    Ok(Model {
        glb: glb::encode(mesh, texture.0, texture.1),
        preview_png,
    })
}

use image::{DynamicImage, ImageReader, Limits, RgbaImage};
use std::io::Cursor;

/// Longest side of the embedded texture (and of the working copy of a photo), in pixels.
pub const TEXTURE_MAX_SIDE: u32 = 1024;

/// Why no model could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReliefError {
    /// The photo cannot be decoded (within the limits).
    #[error("cannot decode the image: {0}")]
    UnreadablePhoto(String),
    /// The depth map cannot be decoded.
    #[error("the depth map is not a readable image: {0}")]
    UnreadableDepthMap(String),
    /// The texture could not be encoded.
    #[error("texture encoding failed: {0}")]
    Encoding(String),
}

/// Decodes an image within `limits` (pixel count and allocation) and reduces it at once to
/// what the pipeline uses: at most [`TEXTURE_MAX_SIDE`] pixels a side (the texture's size; the
/// depth grid and the preview are smaller still). The full decode lives only inside this call,
/// so a generation's memory is one decoded image (at most `limits.max_alloc`) plus a working set
/// of a few megabytes, whatever the photo's size.
pub fn decode(bytes: &[u8], limits: Limits) -> Result<DynamicImage, ReliefError> {
    let unreadable = |e: image::ImageError| ReliefError::UnreadablePhoto(e.to_string());
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ReliefError::UnreadablePhoto(e.to_string()))?;
    reader.limits(limits);
    let full = reader.decode().map_err(unreadable)?;
    if full.width().max(full.height()) > TEXTURE_MAX_SIDE {
        // Box-filtered into the small image alone: no full-size intermediate.
        Ok(full.thumbnail(TEXTURE_MAX_SIDE, TEXTURE_MAX_SIDE))
    } else {
        Ok(full)
    }
}

/// The photo as the model's texture: at most 1024 px, JPEG (PNG when it has transparency).
pub fn texture(image: &DynamicImage) -> Result<(Vec<u8>, &'static str), ReliefError> {
    let scaled = if image.width().max(image.height()) > TEXTURE_MAX_SIDE {
        image.resize(
            TEXTURE_MAX_SIDE,
            TEXTURE_MAX_SIDE,
            image::imageops::FilterType::Triangle,
        )
    } else {
        image.clone()
    };
    let mut out = Cursor::new(Vec::new());
    let encode_failed = |e: image::ImageError| ReliefError::Encoding(e.to_string());
    if depth::has_transparency(&scaled.to_rgba8()) {
        scaled
            .to_rgba8()
            .write_to(&mut out, image::ImageFormat::Png)
            .map_err(encode_failed)?;
        Ok((out.into_inner(), "image/png"))
    } else {
        let rgb = scaled.to_rgb8();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
            .encode_image(&rgb)
            .map_err(encode_failed)?;
        Ok((out.into_inner(), "image/jpeg"))
    }
}

fn estimated_mesh(rgba: &RgbaImage, face_limit: Option<u32>) -> mesh::Mesh {
    let (grid_w, grid_h) = mesh::grid_size(rgba.width(), rgba.height(), face_limit);
    let depth = depth::estimate(rgba, grid_w, grid_h);
    mesh::relief_mesh(&depth, rgba.width() as f32 / rgba.height() as f32)
}

/// The whole pipeline on a decoded photo: depth estimate, relief mesh, GLB with `texture`.
pub fn generate_glb(rgba: &RgbaImage, texture: (&[u8], &str), face_limit: Option<u32>) -> Vec<u8> {
    glb::encode(&estimated_mesh(rgba, face_limit), texture.0, texture.1)
}

/// [`generate_glb`] and the model's preview.
pub fn generate(
    rgba: &RgbaImage,
    texture: (&[u8], &str),
    face_limit: Option<u32>,
) -> Result<Model, ReliefError> {
    model(&estimated_mesh(rgba, face_limit), rgba, texture)
}

/// The relief mesh of `photo` shaped by a depth map image computed elsewhere (FAL's depth
/// model), textured with the photo, and its preview.
pub fn from_depth_image(
    photo: &[u8],
    depth_image: &[u8],
    limits: Limits,
    face_limit: Option<u32>,
) -> Result<Model, ReliefError> {
    let photo = decode(photo, limits.clone())?;
    let depth_image =
        decode(depth_image, limits).map_err(|e| ReliefError::UnreadableDepthMap(e.to_string()))?;
    let tex = texture(&photo)?;
    let (grid_w, grid_h) = mesh::grid_size(photo.width(), photo.height(), face_limit);
    let depth = depth::from_depth_image(&depth_image.to_luma8(), grid_w, grid_h);
    let mesh = mesh::relief_mesh(&depth, photo.width() as f32 / photo.height() as f32);
    model(&mesh, &photo.to_rgba8(), (&tex.0, tex.1))
}
