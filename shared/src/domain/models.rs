//! The catalog of model types clients may ask for. It is data: adding a model is one entry.
//! Models served by FAL.AI are available only when a FAL key is configured; the default model
//! also runs on the built-in generator.

use serde::Serialize;

/// One model type of the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ModelSpec {
    /// The `model_type` clients send.
    pub id: &'static str,
    pub description: &'static str,
    /// The FAL application serving it.
    pub fal_app: &'static str,
    /// Whether the built-in generator can run it without FAL.
    pub builtin: bool,
    /// Estimated FAL price per run, in US dollars.
    pub price_per_run_usd: f64,
}

pub const CATALOG: &[ModelSpec] = &[
    ModelSpec {
        id: "depth_anything_v2",
        description: "Depth relief: the photo as a textured relief mesh from an estimated depth map",
        fal_app: "fal-ai/image-preprocessors/depth-anything/v2",
        builtin: true,
        price_per_run_usd: 0.01,
    },
    ModelSpec {
        id: "tripo3d",
        description: "Tripo v2.5 image-to-3D: a full textured mesh",
        fal_app: "tripo3d/tripo/v2.5/image-to-3d",
        builtin: false,
        price_per_run_usd: 0.3,
    },
    ModelSpec {
        id: "trellis",
        description: "TRELLIS image-to-3D",
        fal_app: "fal-ai/trellis",
        builtin: false,
        price_per_run_usd: 0.02,
    },
    ModelSpec {
        id: "hunyuan3d",
        description: "Hunyuan3D v2 image-to-3D",
        fal_app: "fal-ai/hunyuan3d/v2",
        builtin: false,
        price_per_run_usd: 0.16,
    },
];

pub fn find(id: &str) -> Option<&'static ModelSpec> {
    CATALOG.iter().find(|m| m.id == id)
}

/// Whether `model` can run in a deployment with (or without) a FAL key.
pub fn is_available(model: &ModelSpec, fal_configured: bool) -> bool {
    model.builtin || fal_configured
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_model_is_builtin_and_fal_models_need_a_key() {
        let default = find(super::super::job::DEFAULT_MODEL_TYPE).unwrap();
        assert!(is_available(default, false));
        let tripo = find("tripo3d").unwrap();
        assert!(!is_available(tripo, false));
        assert!(is_available(tripo, true));
        assert!(find("quad").is_none());
    }
}
