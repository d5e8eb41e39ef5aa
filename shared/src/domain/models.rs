//! The catalog of model types clients may ask for. It is data: adding a model is one entry
//! saying which FAL application serves it, how our input maps onto that application's input,
//! which output field holds the result, and what a run costs. Models served by FAL.AI are
//! available only when a FAL key is configured; the default model also runs on the built-in
//! generator.

use super::job::JobOptions;
use serde::Serialize;
use serde_json::{Map, Value, json};

/// What a FAL application returns, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelOutput {
    /// A finished mesh (`{url, file_size, content_type, file_name}`) under `field`.
    Mesh { field: &'static str },
    /// A depth map image (`{url, content_type, width, height}`) under `field`, which our mesh
    /// builder turns into a relief mesh textured with the photo.
    DepthMap { field: &'static str },
}

impl ModelOutput {
    pub fn field(self) -> &'static str {
        match self {
            Self::Mesh { field } | Self::DepthMap { field } => field,
        }
    }
}

/// One model type of the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ModelSpec {
    /// The `model_type` clients send.
    pub id: &'static str,
    pub description: &'static str,
    /// The FAL application serving it (`POST {FAL_BASE_URL}/{fal_app}`).
    pub fal_app: &'static str,
    /// The input field carrying the image URL.
    pub image_field: &'static str,
    /// Fixed input values sent with every request.
    #[serde(skip)]
    pub fixed_input: &'static [(&'static str, &'static str)],
    /// Job options the model accepts; those in `forwarded_options` go to FAL as they are.
    pub accepted_options: &'static [&'static str],
    #[serde(skip)]
    pub forwarded_options: &'static [&'static str],
    pub output: ModelOutput,
    /// Whether the built-in generator can run it without FAL.
    pub builtin: bool,
    /// Estimated FAL price per run, in US dollars.
    pub price_per_run_usd: f64,
}

/// The model type of jobs that name none; the built-in generator serves it.
pub const DEFAULT_MODEL: &str = "depth_anything_v2";

pub const CATALOG: &[ModelSpec] = &[
    ModelSpec {
        id: DEFAULT_MODEL,
        description: "Depth relief: the photo as a textured relief mesh from a depth map",
        fal_app: "fal-ai/image-preprocessors/depth-anything/v2",
        image_field: "image_url",
        fixed_input: &[],
        accepted_options: &["face_limit"],
        forwarded_options: &[],
        output: ModelOutput::DepthMap { field: "image" },
        builtin: true,
        price_per_run_usd: 0.01,
    },
    ModelSpec {
        id: "tripo3d",
        description: "Tripo v2.5 image-to-3D: a full textured mesh",
        fal_app: "tripo3d/tripo/v2.5/image-to-3d",
        image_field: "image_url",
        fixed_input: &[
            ("texture", "standard"),
            ("texture_alignment", "original_image"),
            ("orientation", "default"),
        ],
        accepted_options: &["face_limit", "texture", "pbr", "seed"],
        forwarded_options: &["face_limit", "texture", "pbr", "seed"],
        output: ModelOutput::Mesh {
            field: "model_mesh",
        },
        builtin: false,
        price_per_run_usd: 0.3,
    },
    ModelSpec {
        id: "trellis",
        description: "TRELLIS image-to-3D",
        fal_app: "fal-ai/trellis",
        image_field: "image_url",
        fixed_input: &[],
        accepted_options: &["seed"],
        forwarded_options: &["seed"],
        output: ModelOutput::Mesh {
            field: "model_mesh",
        },
        builtin: false,
        price_per_run_usd: 0.02,
    },
    ModelSpec {
        id: "hunyuan3d",
        description: "Hunyuan3D v2 image-to-3D",
        fal_app: "fal-ai/hunyuan3d/v2",
        image_field: "input_image_url",
        fixed_input: &[],
        accepted_options: &["seed"],
        forwarded_options: &["seed"],
        output: ModelOutput::Mesh {
            field: "model_mesh",
        },
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

/// The ids of the models a deployment with (or without) a FAL key can run.
pub fn available_ids(fal_configured: bool) -> Vec<&'static str> {
    CATALOG
        .iter()
        .filter(|m| is_available(m, fal_configured))
        .map(|m| m.id)
        .collect()
}

/// The options that are set, as a JSON object.
fn set_options(options: &JobOptions) -> Map<String, Value> {
    match serde_json::to_value(options) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

impl ModelSpec {
    /// The first option that is set but that this model does not take. `formats` is ours, not
    /// the model's: every model takes it.
    pub fn unsupported_option(&self, options: &JobOptions) -> Option<String> {
        set_options(options)
            .keys()
            .find(|k| *k != "formats" && !self.accepted_options.contains(&k.as_str()))
            .cloned()
    }

    /// The JSON input of the FAL application for an image at `image_url`.
    pub fn fal_input(&self, image_url: &str, options: &JobOptions) -> Value {
        let mut input = Map::new();
        input.insert(self.image_field.to_owned(), json!(image_url));
        for (name, value) in self.fixed_input {
            input.insert((*name).to_owned(), json!(value));
        }
        for (name, value) in set_options(options) {
            if self.forwarded_options.contains(&name.as_str()) {
                input.insert(name, value);
            }
        }
        Value::Object(input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Texture;

    #[test]
    fn default_model_is_builtin_and_fal_models_need_a_key() {
        let default = find(DEFAULT_MODEL).unwrap();
        assert!(is_available(default, false));
        let tripo = find("tripo3d").unwrap();
        assert!(!is_available(tripo, false));
        assert!(is_available(tripo, true));
        assert!(find("quad").is_none());
        assert_eq!(available_ids(false), [DEFAULT_MODEL]);
        assert_eq!(
            available_ids(true),
            [DEFAULT_MODEL, "tripo3d", "trellis", "hunyuan3d"]
        );
    }

    #[test]
    fn inputs_follow_each_application_schema() {
        let options = JobOptions {
            face_limit: Some(5000),
            texture: Some(Texture::Hd),
            pbr: Some(true),
            seed: Some(7),
            ..JobOptions::default()
        };
        let tripo = find("tripo3d")
            .unwrap()
            .fal_input("https://x/i.png", &options);
        assert_eq!(
            tripo,
            json!({"image_url": "https://x/i.png", "texture": "HD", "texture_alignment": "original_image",
                   "orientation": "default", "face_limit": 5000, "pbr": true, "seed": 7})
        );
        let hunyuan = find("hunyuan3d")
            .unwrap()
            .fal_input("https://x/i.png", &JobOptions::default());
        assert_eq!(hunyuan, json!({"input_image_url": "https://x/i.png"}));
        let depth = find("depth_anything_v2")
            .unwrap()
            .fal_input("https://x/i.png", &options);
        assert_eq!(depth, json!({"image_url": "https://x/i.png"}));
        for model in CATALOG {
            let input = model.fal_input("u", &options);
            assert!(
                input.get("quad").is_none(),
                "{} must never send quad",
                model.id
            );
        }
    }

    #[test]
    fn options_a_model_does_not_take_are_named() {
        let trellis = find("trellis").unwrap();
        let options = JobOptions {
            texture: Some(Texture::No),
            ..JobOptions::default()
        };
        assert_eq!(
            trellis.unsupported_option(&options).as_deref(),
            Some("texture")
        );
        assert_eq!(find("tripo3d").unwrap().unsupported_option(&options), None);
    }
}
