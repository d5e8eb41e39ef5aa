//! The formats a model is handed out in: the stored GLB and the conversions made from it (USDZ
//! for AR Quick Look, a zip of OBJ, MTL and texture for editors, binary STL for printers), where
//! each is kept beside the GLB, and what a conversion that could not be made left instead.

use super::ids::JobId;
use serde::{Deserialize, Serialize};

/// Where generated models (and everything made of them) live in object storage.
pub const RESULTS_PREFIX: &str = "results/";

/// A format a completed job's model can be downloaded in.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ModelFormat {
    /// glTF 2.0 binary, as generated: web viewers, three.js, Android's Scene Viewer.
    Glb,
    /// A USDZ package (`.usdc` root layer and its texture): iOS AR Quick Look.
    Usdz,
    /// A zip of `model.obj`, `model.mtl` and the texture: Blender, Maya, most editors.
    Obj,
    /// Binary STL in millimetres, 100 mm along the longest side: slicers for 3D printing.
    Stl,
}

impl ModelFormat {
    pub const ALL: [Self; 4] = [Self::Glb, Self::Usdz, Self::Obj, Self::Stl];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Glb => "glb",
            Self::Usdz => "usdz",
            Self::Obj => "obj",
            Self::Stl => "stl",
        }
    }

    /// The downloaded file's extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Glb => "glb",
            Self::Usdz => "usdz",
            Self::Obj => "obj.zip",
            Self::Stl => "stl",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Glb => "model/gltf-binary",
            Self::Usdz => "model/vnd.usdz+zip",
            Self::Obj => "application/zip",
            Self::Stl => "model/stl",
        }
    }

    /// Where the conversion of job `job_id`'s model is kept, beside the GLB.
    pub fn object_key(self, job_id: JobId) -> String {
        format!("{RESULTS_PREFIX}{job_id}/model.{}", self.extension())
    }

    /// Where a conversion that cannot be made records why (a [`FormatFailure`] as JSON), so
    /// that it is tried once and its reason said on every request.
    pub fn failure_key(self, job_id: JobId) -> String {
        format!(
            "{RESULTS_PREFIX}{job_id}/model.{}.failed.json",
            self.extension()
        )
    }

    /// The downloaded file's name for a model named `stem`.
    pub fn filename(self, stem: &str) -> String {
        format!("{stem}.{}", self.extension())
    }

    /// The format a downloaded file's name ends with (`.glb`, `.usdz`, `.obj.zip`, `.stl`).
    pub fn of_filename(name: &str) -> Option<Self> {
        let lower = name.to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|f| lower.ends_with(&format!(".{}", f.extension())))
    }
}

/// A model file's name without its format's extension (`rocket.obj.zip` -> `rocket`), or without
/// its last extension when it names no format.
pub fn stem_of(filename: &str) -> &str {
    ModelFormat::of_filename(filename)
        .and_then(|f| filename.get(..filename.len() - f.extension().len() - 1))
        .or_else(|| filename.rsplit_once('.').map(|(stem, _)| stem))
        .unwrap_or(filename)
}

impl std::fmt::Display for ModelFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A conversion kept beside the GLB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFormat {
    pub format: ModelFormat,
    pub object_key: String,
    pub size: u64,
}

/// A format of a model as it stands once tried: kept, or known not to be makeable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Converted {
    Stored(StoredFormat),
    Failed(FormatFailure),
}

impl Converted {
    pub fn format(&self) -> ModelFormat {
        match self {
            Self::Stored(s) => s.format,
            Self::Failed(f) => f.format,
        }
    }
}

/// Why a format cannot be made of a model, said the same way on every request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormatFailure {
    pub format: ModelFormat,
    /// What the model holds that the converter cannot read, in words.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_has_its_own_key_name_and_media_type_beside_the_glb() {
        let job = JobId::new();
        let keys: std::collections::BTreeSet<String> =
            ModelFormat::ALL.iter().map(|f| f.object_key(job)).collect();
        assert_eq!(keys.len(), 4);
        assert_eq!(
            ModelFormat::Glb.object_key(job),
            format!("results/{job}/model.glb")
        );
        for format in ModelFormat::ALL {
            for key in [format.object_key(job), format.failure_key(job)] {
                assert!(key.starts_with(&format!("results/{job}/")), "{key}");
            }
            assert_eq!(
                ModelFormat::of_filename(&format.filename("Rocket")),
                Some(format)
            );
            let json = serde_json::to_string(&format).unwrap();
            assert_eq!(json, format!("\"{format}\""));
        }
        assert_eq!(ModelFormat::of_filename("rocket.png"), None);
        for (name, stem) in [
            ("rocket.obj.zip", "rocket"),
            ("my.photo.USDZ", "my.photo"),
            ("rocket.png", "rocket"),
            ("rocket", "rocket"),
        ] {
            assert_eq!(stem_of(name), stem);
        }
        assert_eq!(
            ModelFormat::of_filename("ROCKET.USDZ"),
            Some(ModelFormat::Usdz)
        );
    }
}
