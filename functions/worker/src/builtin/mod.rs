//! The built-in generator: photo -> depth estimate -> closed relief mesh -> textured glTF binary.
//! It needs no network and no key, and serves the default model type locally.

pub mod depth;
pub mod glb;
pub mod mesh;

use async_trait::async_trait;
use bytes::Bytes;
use image::{DynamicImage, ImageReader, RgbaImage};
use image2model_shared::ports::{
    GeneratedModel, GenerationRequest, Generator, GeneratorError, ProgressReporter,
};
use image2model_shared::validation::ImageLimits;
use image2model_shared::validation::image::decode_limits;
use std::io::Cursor;

/// The model type the built-in generator serves.
pub const BUILTIN_MODEL: &str = "depth_anything_v2";
/// Longest side of the embedded texture, in pixels.
const TEXTURE_MAX_SIDE: u32 = 1024;

pub struct BuiltinGenerator {
    max_pixels: u64,
}

impl BuiltinGenerator {
    pub fn new(max_pixels: u64) -> Self {
        Self { max_pixels }
    }
}

fn invalid(message: String) -> GeneratorError {
    GeneratorError::InvalidInput {
        code: "INVALID_IMAGE",
        message,
    }
}

/// Decodes an image under the pixel limit.
pub fn decode(bytes: &[u8], max_pixels: u64) -> Result<DynamicImage, GeneratorError> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| invalid(e.to_string()))?;
    reader.limits(decode_limits(ImageLimits {
        max_bytes: u64::MAX,
        max_pixels,
    }));
    reader
        .decode()
        .map_err(|e| invalid(format!("cannot decode the image: {e}")))
}

/// The photo as the model's texture: at most 1024 px, JPEG (PNG when it has transparency).
pub fn texture(image: &DynamicImage) -> Result<(Vec<u8>, &'static str), GeneratorError> {
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
    let encode_failed =
        |e: image::ImageError| GeneratorError::Transient(format!("texture encoding failed: {e}"));
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

/// The whole pipeline, synchronously: used by the generator and by benchmarks.
pub fn generate_glb(rgba: &RgbaImage, texture: (&[u8], &str), face_limit: Option<u32>) -> Vec<u8> {
    let (grid_w, grid_h) = mesh::grid_size(rgba.width(), rgba.height(), face_limit);
    let depth = depth::estimate(rgba, grid_w, grid_h);
    let mesh = mesh::relief_mesh(&depth, rgba.width() as f32 / rgba.height() as f32);
    glb::encode(&mesh, texture.0, texture.1)
}

/// The relief mesh of `photo` shaped by a depth map image computed elsewhere (FAL's depth
/// model), textured with the photo.
pub fn glb_from_depth_image(
    photo: &[u8],
    depth_image: &[u8],
    max_pixels: u64,
    face_limit: Option<u32>,
) -> Result<Vec<u8>, GeneratorError> {
    let photo = decode(photo, max_pixels)?;
    let depth_image =
        decode(depth_image, max_pixels).map_err(|e| GeneratorError::InvalidInput {
            code: "FAL_BAD_OUTPUT",
            message: format!("the depth map is not a readable image: {e}"),
        })?;
    let tex = texture(&photo)?;
    let (grid_w, grid_h) = mesh::grid_size(photo.width(), photo.height(), face_limit);
    let depth = depth::from_depth_image(&depth_image.to_luma8(), grid_w, grid_h);
    let mesh = mesh::relief_mesh(&depth, photo.width() as f32 / photo.height() as f32);
    Ok(glb::encode(&mesh, &tex.0, tex.1))
}

/// Runs `f` on the blocking pool.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, GeneratorError> + Send + 'static,
) -> Result<T, GeneratorError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| GeneratorError::Transient(format!("generator task failed: {e}")))?
}

#[async_trait]
impl Generator for BuiltinGenerator {
    fn supports(&self, model_type: &str) -> bool {
        model_type == BUILTIN_MODEL
    }

    async fn generate(
        &self,
        request: GenerationRequest,
        progress: &dyn ProgressReporter,
    ) -> Result<GeneratedModel, GeneratorError> {
        if !self.supports(&request.model_type) {
            return Err(GeneratorError::Unavailable(request.model_type));
        }
        progress.report(10, "Decoding image").await;
        let max_pixels = self.max_pixels;
        let image = request.image;
        let decoded = blocking(move || decode(&image, max_pixels)).await?;
        progress.report(30, "Preparing texture").await;
        let (decoded, tex) = blocking(move || texture(&decoded).map(|t| (decoded, t))).await?;
        progress
            .report(50, "Estimating depth and building the relief mesh")
            .await;
        let face_limit = request.options.face_limit;
        let bytes = blocking(move || {
            Ok(generate_glb(
                &decoded.to_rgba8(),
                (&tex.0, tex.1),
                face_limit,
            ))
        })
        .await?;
        progress.report(90, "Model encoded").await;
        Ok(GeneratedModel {
            bytes: Bytes::from(bytes),
            content_type: "model/gltf-binary",
            file_extension: "glb",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageFormat, Rgba};
    use image2model_shared::domain::JobOptions;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<u8>>);

    #[async_trait]
    impl ProgressReporter for Recorder {
        async fn report(&self, progress: u8, _message: &str) {
            self.0.lock().unwrap().push(progress);
        }
    }

    fn photo(alpha: bool) -> Vec<u8> {
        let img = RgbaImage::from_fn(300, 200, |x, y| {
            let inside = (x as i32 - 150).pow(2) + (y as i32 - 100).pow(2) < 70 * 70;
            match (inside, alpha) {
                (true, _) => Rgba([(x % 256) as u8, 180, (y % 256) as u8, 255]),
                (false, true) => Rgba([0, 0, 0, 0]),
                (false, false) => Rgba([240, 240, 235, 255]),
            }
        });
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    async fn run(bytes: Vec<u8>, options: JobOptions) -> (Vec<u8>, Vec<u8>) {
        let recorder = Recorder::default();
        let request = GenerationRequest {
            model_type: BUILTIN_MODEL.into(),
            options,
            image: Bytes::from(bytes),
        };
        let model = BuiltinGenerator::new(40_000_000)
            .generate(request, &recorder)
            .await
            .unwrap();
        assert_eq!(
            (model.content_type, model.file_extension),
            ("model/gltf-binary", "glb")
        );
        let progress = recorder.0.into_inner().unwrap();
        (model.bytes.to_vec(), progress)
    }

    /// Parses the GLB with the `gltf` crate and checks geometry and texture.
    fn check_glb(glb: &[u8], expect_mime: &str) -> (usize, usize) {
        let (doc, buffers, images) = gltf::import_slice(glb).expect("valid glTF binary");
        let mesh = doc.meshes().next().unwrap();
        let primitive = mesh.primitives().next().unwrap();
        let reader = primitive.reader(|b| Some(&buffers[b.index()]));
        let positions: Vec<[f32; 3]> = reader.read_positions().unwrap().collect();
        let triangles = reader.read_indices().unwrap().into_u32().count() / 3;
        assert_eq!(reader.read_normals().unwrap().count(), positions.len());
        assert_eq!(
            reader.read_tex_coords(0).unwrap().into_f32().count(),
            positions.len()
        );
        let bbox = primitive.bounding_box();
        assert!(
            (bbox.max[0] - 0.5).abs() < 1e-6 && (bbox.min[0] + 0.5).abs() < 1e-6,
            "x spans 1 unit: {bbox:?}"
        );
        assert!(
            (bbox.max[1] - 1.0 / 3.0).abs() < 1e-3,
            "y spans 2/3 unit: {bbox:?}"
        );
        assert_eq!(bbox.min[2], 0.0);
        assert!(
            bbox.max[2] > mesh::BASE_THICKNESS + 0.05
                && bbox.max[2] <= mesh::BASE_THICKNESS + mesh::RELIEF_HEIGHT + 1e-6
        );
        let material = primitive.material();
        let texture = material
            .pbr_metallic_roughness()
            .base_color_texture()
            .expect("textured");
        match texture.texture().source().source() {
            gltf::image::Source::View { mime_type, .. } => assert_eq!(mime_type, expect_mime),
            other => panic!("texture must be embedded, got {other:?}"),
        }
        assert_eq!((images[0].width, images[0].height), (300, 200));
        (positions.len(), triangles)
    }

    #[tokio::test]
    async fn photo_becomes_a_textured_closed_relief() {
        let (glb, progress) = run(photo(false), JobOptions::default()).await;
        let (vertices, triangles) = check_glb(&glb, "image/jpeg");
        let (gw, gh) = mesh::grid_size(300, 200, None);
        assert_eq!((gw, gh), (128, 86));
        assert_eq!(vertices as u64, mesh::vertices_for(gw, gh));
        assert_eq!(triangles as u64, mesh::triangles_for(gw, gh));
        assert!(
            progress.windows(2).all(|w| w[0] <= w[1]) && progress.len() >= 3,
            "{progress:?}"
        );
    }

    #[tokio::test]
    async fn transparency_gives_a_png_texture_and_face_limit_is_respected() {
        let options = JobOptions {
            face_limit: Some(5000),
            ..JobOptions::default()
        };
        let (glb, _) = run(photo(true), options).await;
        let (_, triangles) = check_glb(&glb, "image/png");
        assert!(triangles <= 5000 && triangles > 2500, "{triangles}");
    }

    #[tokio::test]
    async fn garbage_is_invalid_input_not_a_retry() {
        let request = GenerationRequest {
            model_type: BUILTIN_MODEL.into(),
            options: JobOptions::default(),
            image: Bytes::from_static(b"nope"),
        };
        let err = BuiltinGenerator::new(1000)
            .generate(request, &Recorder::default())
            .await
            .unwrap_err();
        assert!(!err.is_retryable());
        assert_eq!(err.code(), "INVALID_IMAGE");
        let request = GenerationRequest {
            model_type: "tripo3d".into(),
            options: JobOptions::default(),
            image: Bytes::new(),
        };
        assert!(matches!(
            BuiltinGenerator::new(1000)
                .generate(request, &Recorder::default())
                .await,
            Err(GeneratorError::Unavailable(_))
        ));
    }
}
