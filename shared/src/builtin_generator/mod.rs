//! The built-in generator (the `Generator` port's implementation): photo -> depth estimate ->
//! closed relief mesh -> textured glTF binary, off the async runtime. It needs no network and no
//! key, and serves the catalog's built-in model; it also turns a depth map computed at FAL into
//! the same mesh. The geometry itself is the `image2model-relief` crate.

use crate::domain::{JobErrorCode, models};
use crate::ports::{
    GeneratedModel, GenerationRequest, Generator, GeneratorError, PreviewImage, ProgressReporter,
};
use crate::validation::ImageLimits;
use crate::validation::image::decode_limits;
use async_trait::async_trait;
use bytes::Bytes;
use image2model_relief::{self as relief, ReliefError};

pub struct BuiltinGenerator {
    limits: ImageLimits,
}

impl BuiltinGenerator {
    /// A generator that decodes within `limits` (the pixel and decode limits of validation).
    pub fn new(limits: ImageLimits) -> Self {
        Self { limits }
    }
}

impl From<ReliefError> for GeneratorError {
    fn from(err: ReliefError) -> Self {
        match err {
            ReliefError::UnreadablePhoto(_) => Self::InvalidInput {
                code: JobErrorCode::InvalidImage,
                message: err.to_string(),
            },
            ReliefError::UnreadableDepthMap(_) => Self::InvalidInput {
                code: JobErrorCode::FalBadOutput,
                message: err.to_string(),
            },
            ReliefError::Encoding(_) => Self::Transient(err.to_string()),
        }
    }
}

/// Our relief mesh of `photo` shaped by a depth map computed elsewhere (FAL's depth model), and
/// its preview.
pub fn relief_from_depth_image(
    photo: &[u8],
    depth_image: &[u8],
    limits: ImageLimits,
    face_limit: Option<u32>,
) -> Result<relief::Model, GeneratorError> {
    relief::from_depth_image(photo, depth_image, decode_limits(limits), face_limit)
        .map_err(GeneratorError::from)
}

/// Runs `f` on the blocking pool. A panic there is the input's doing (it would panic again) and
/// fails the job as [`GeneratorError::crashed`]; a task cancelled by a stopping runtime may
/// succeed later.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, GeneratorError> + Send + 'static,
) -> Result<T, GeneratorError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        if e.is_panic() {
            tracing::error!(error = %e, "the generator panicked");
            GeneratorError::crashed()
        } else {
            GeneratorError::Transient(format!("generator task failed: {e}"))
        }
    })?
}

#[async_trait]
impl Generator for BuiltinGenerator {
    /// The catalog's built-in models, and the FAL depth relief's jobs where no FAL computes
    /// depth: before the built-in relief had its own id, its jobs were recorded under that one.
    fn supports(&self, model_type: &str) -> bool {
        models::find(model_type).is_some_and(|m| m.builtin) || model_type == models::DEPTH_MODEL
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
        let limits = self.limits;
        let image = request.image;
        let decoded = blocking(move || Ok(relief::decode(&image, decode_limits(limits))?)).await?;
        progress.report(30, "Preparing texture").await;
        let (decoded, tex) =
            blocking(move || Ok(relief::texture(&decoded).map(|t| (decoded, t))?)).await?;
        progress
            .report(50, "Estimating depth and building the relief mesh")
            .await;
        let face_limit = request.options.face_limit;
        let model = blocking(move || {
            Ok(relief::generate(
                &decoded.to_rgba8(),
                (&tex.0, tex.1),
                face_limit,
            )?)
        })
        .await?;
        progress.report(90, "Model encoded").await;
        Ok(GeneratedModel {
            bytes: Bytes::from(model.glb),
            content_type: "model/gltf-binary",
            file_extension: "glb",
            preview: Some(PreviewImage::png(Bytes::from(model.preview_png))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::JobOptions;
    use crate::domain::models::RELIEF_MODEL;
    use image::{ImageFormat, Rgba, RgbaImage};
    use image2model_relief::mesh;
    use std::io::Cursor;
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
            model_type: RELIEF_MODEL.into(),
            options,
            image: Bytes::from(bytes),
        };
        let model = BuiltinGenerator::new(crate::config::Config::default().image_limits())
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
            model_type: RELIEF_MODEL.into(),
            options: JobOptions::default(),
            image: Bytes::from_static(b"nope"),
        };
        let err = BuiltinGenerator::new(crate::config::Config::default().image_limits())
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
            BuiltinGenerator::new(crate::config::Config::default().image_limits())
                .generate(request, &Recorder::default())
                .await,
            Err(GeneratorError::Unavailable(_))
        ));
    }
}
