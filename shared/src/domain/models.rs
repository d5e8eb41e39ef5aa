//! The catalog of model types clients may ask for. It is data: adding a model is one entry
//! saying what it is called and makes, which FAL application serves it, how our input maps onto
//! that application's input, which output field holds the result, and what a run costs. Models
//! served by FAL.AI are available only when a FAL key is configured; `relief`, the built-in
//! generator, runs everywhere and is the default where no FAL key is set.

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
    /// What a person is shown: what it is, and who runs it.
    pub display_name: &'static str,
    pub description: &'static str,
    /// What a model of it is, in a phrase.
    pub makes: &'static str,
    /// The most faces `face_limit` may ask for (more is refused, never silently ignored); `None`
    /// when the model takes no `face_limit`.
    pub face_limit_max: Option<u32>,
    /// The FAL application serving it (`POST {FAL_BASE_URL}/{fal_app}`); empty for the built-in
    /// generator, which never runs at FAL.
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
    /// Whether the built-in generator runs it (always, even where a FAL key is set).
    pub builtin: bool,
    /// Estimated FAL price per run, in US dollars.
    pub price_per_run_usd: f64,
}

/// The built-in generator: a relief of the photo from a depth estimated here, no FAL needed.
pub const RELIEF_MODEL: &str = "relief";
/// A relief from the depth map FAL's Depth Anything v2 computes.
pub const DEPTH_MODEL: &str = "depth_anything_v2";

/// The most faces a relief has: a 448-point grid along the photo's longer side (about 800,000
/// faces for a square photo, 400,000 for a 2:1 one), never more points than the photo has pixels.
/// Its GLB (about 23 MB at most) then converts to every format within the default decode memory
/// budget (`MAX_DECODE_BYTES`; see the formats bench).
pub const RELIEF_FACE_LIMIT_MAX: u32 = 800_000;

/// The model type of jobs that name none: the FAL depth relief where a FAL key is set (as before
/// the built-in generator had its own id), the built-in relief elsewhere.
pub fn default_model(fal_configured: bool) -> &'static str {
    if fal_configured {
        DEPTH_MODEL
    } else {
        RELIEF_MODEL
    }
}

/// What each job option does, as `/models/available` says it.
pub fn option_description(option: &str) -> &'static str {
    match option {
        "face_limit" => {
            "Most triangles of the model: more gives finer detail, up to the model's face_limit_max; without it, the model's default detail"
        }
        "texture" => "Texture quality: no, standard or HD",
        "pbr" => "Physically based materials (metalness, roughness) besides the colour texture",
        "seed" => "The random seed: the same photo and seed give the same model",
        _ => "",
    }
}

pub const CATALOG: &[ModelSpec] = &[
    ModelSpec {
        id: RELIEF_MODEL,
        display_name: "Relief from one photo, built in",
        description: "The photo as a textured relief: depth estimated from the image itself (shading and focus), no learned model and no FAL key",
        makes: "a closed relief plate, the photo on its raised front",
        face_limit_max: Some(RELIEF_FACE_LIMIT_MAX),
        fal_app: "",
        image_field: "",
        fixed_input: &[],
        accepted_options: &["face_limit"],
        forwarded_options: &[],
        output: ModelOutput::DepthMap { field: "image" },
        builtin: true,
        price_per_run_usd: 0.0,
    },
    ModelSpec {
        id: DEPTH_MODEL,
        display_name: "Depth Anything v2 relief (FAL.AI)",
        description: "Depth relief: the photo as a textured relief mesh from the depth map FAL's Depth Anything v2 computes",
        makes: "a closed relief plate, the photo on its raised front",
        face_limit_max: Some(RELIEF_FACE_LIMIT_MAX),
        fal_app: "fal-ai/image-preprocessors/depth-anything/v2",
        image_field: "image_url",
        fixed_input: &[],
        accepted_options: &["face_limit"],
        forwarded_options: &[],
        output: ModelOutput::DepthMap { field: "image" },
        builtin: false,
        price_per_run_usd: 0.01,
    },
    ModelSpec {
        id: "tripo3d",
        display_name: "Tripo v2.5 (FAL.AI)",
        makes: "a full textured 3D object, back included",
        face_limit_max: Some(2_000_000),
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
        display_name: "TRELLIS (FAL.AI)",
        makes: "a full textured 3D object, back included",
        face_limit_max: None,
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
        display_name: "Hunyuan3D v2 (FAL.AI)",
        makes: "a full textured 3D object, back included",
        face_limit_max: None,
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
    model.builtin || (fal_configured && model.runs_at_fal())
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
    /// Whether its jobs go to FAL (where a key is set); the built-in relief never does.
    pub fn runs_at_fal(&self) -> bool {
        !self.builtin
    }

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

/// The catalog's model types, as the document names them.
pub struct ModelType;

impl utoipa::PartialSchema for ModelType {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(CATALOG.iter().map(|m| m.id)))
            .description(Some("A model type of the catalog"))
            .into()
    }
}

impl utoipa::ToSchema for ModelType {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Texture;

    #[test]
    fn the_relief_runs_everywhere_and_fal_models_need_a_key() {
        let relief = find(RELIEF_MODEL).unwrap();
        assert!(is_available(relief, false) && is_available(relief, true));
        assert!(!relief.runs_at_fal());
        for id in [DEPTH_MODEL, "tripo3d"] {
            let model = find(id).unwrap();
            assert!(!is_available(model, false) && is_available(model, true));
            assert!(model.runs_at_fal());
        }
        assert!(find("quad").is_none());
        assert_eq!(available_ids(false), [RELIEF_MODEL]);
        assert_eq!(
            available_ids(true),
            [RELIEF_MODEL, DEPTH_MODEL, "tripo3d", "trellis", "hunyuan3d"]
        );
        assert_eq!(default_model(false), RELIEF_MODEL);
        assert_eq!(default_model(true), DEPTH_MODEL);
        for model in CATALOG {
            assert!(!model.display_name.is_empty() && !model.makes.is_empty());
            assert_eq!(
                model.face_limit_max.is_some(),
                model.accepted_options.contains(&"face_limit"),
                "{}",
                model.id
            );
            for option in model.accepted_options {
                assert!(!option_description(option).is_empty(), "{option}");
            }
        }
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
