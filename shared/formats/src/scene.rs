//! A GLB read into what the converters need: every triangle of every mesh the default scene
//! shows, in world space (node transforms applied), with its texture coordinates and the
//! base-colour texture of its material. What cannot be read is refused by name: a compression
//! extension (Draco, meshopt) whose data this reader cannot decode, a non-triangle primitive.

use gltf::Gltf;
use gltf::buffer::Source;
use gltf::mesh::Mode;

/// Why a model cannot be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("the model is not a readable glTF binary: {0}")]
    Unreadable(String),
    /// An extension the model requires that the converters cannot read.
    #[error("the model requires the glTF extension {0}, which cannot be converted")]
    UnsupportedExtension(String),
    #[error("the model has no triangles")]
    Empty,
    /// Converting would take more memory than a conversion may (`MAX_DECODE_BYTES`).
    #[error(
        "converting the model needs about {needed} bytes of memory, more than the {limit} a conversion may take"
    )]
    TooLarge { needed: u64, limit: u64 },
    /// A writer refused what it was given: a fault of ours, never the model's.
    #[error("the converted model could not be written: {0}")]
    Unwritable(String),
}

/// One primitive's triangles: positions in world space, texture coordinates when it has them,
/// and the index of its material's base-colour image in [`Scene::images`].
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub positions: Vec<[f32; 3]>,
    pub uvs: Option<Vec<[f32; 2]>>,
    pub indices: Vec<u32>,
    pub image: Option<usize>,
    /// The material's base-colour factor (RGBA, linear).
    pub base_color: [f32; 4],
}

/// An embedded image: its bytes and media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub bytes: Vec<u8>,
    pub mime: String,
}

/// Files of a package, each a name and its bytes, in the order they are written.
pub type NamedFiles = Vec<(String, Vec<u8>)>;

/// A GLB's triangles and images.
#[derive(Debug, Clone, PartialEq)]
pub struct Scene {
    pub parts: Vec<Part>,
    pub images: Vec<Image>,
}

/// The extensions a model may require and still convert: texture transforms (applied to the
/// texture coordinates) and material extensions (which change how a surface shades, not what
/// the converters read). Anything else required, compression (`KHR_draco_mesh_compression`,
/// `EXT_meshopt_compression`), quantized attributes, KTX2 textures, is refused by name.
fn readable_when_required(extension: &str) -> bool {
    extension == "KHR_texture_transform" || extension.starts_with("KHR_materials_")
}

type Matrix = [[f32; 4]; 4];

fn multiply(a: &Matrix, b: &Matrix) -> Matrix {
    let mut out = [[0.0; 4]; 4];
    for (c, column) in out.iter_mut().enumerate() {
        for (r, cell) in column.iter_mut().enumerate() {
            *cell = (0..4).map(|k| a[k][r] * b[c][k]).sum();
        }
    }
    out
}

/// The determinant of the upper 3x3 of `m`: negative when it mirrors.
fn determinant(m: &Matrix) -> f32 {
    m[0][0] * (m[1][1] * m[2][2] - m[2][1] * m[1][2])
        - m[1][0] * (m[0][1] * m[2][2] - m[2][1] * m[0][2])
        + m[2][0] * (m[0][1] * m[1][2] - m[1][1] * m[0][2])
}

/// `KHR_texture_transform` applied to a texture coordinate: scaled, rotated, then offset.
fn texture_transform(
    t: &gltf::texture::TextureTransform<'_>,
) -> impl Fn([f32; 2]) -> [f32; 2] + use<> {
    let ([ox, oy], [sx, sy], r) = (t.offset(), t.scale(), t.rotation());
    let (sin, cos) = r.sin_cos();
    move |[u, v]| {
        let (u, v) = (u * sx, v * sy);
        [cos * u + sin * v + ox, -sin * u + cos * v + oy]
    }
}

fn transform(m: &Matrix, p: [f32; 3]) -> [f32; 3] {
    let mut out = [0.0; 3];
    for (r, value) in out.iter_mut().enumerate() {
        *value = m[0][r] * p[0] + m[1][r] * p[1] + m[2][r] * p[2] + m[3][r];
    }
    out
}

impl Scene {
    /// Reads `glb`.
    pub fn from_glb(glb: &[u8]) -> Result<Self, FormatError> {
        let gltf = Gltf::from_slice(glb).map_err(|e| FormatError::Unreadable(e.to_string()))?;
        if let Some(required) = gltf
            .extensions_required()
            .find(|e| !readable_when_required(e))
        {
            return Err(FormatError::UnsupportedExtension(required.to_owned()));
        }
        let blob = gltf.blob.as_deref();
        let data = |buffer: gltf::Buffer<'_>| match buffer.source() {
            Source::Bin => blob,
            Source::Uri(_) => None,
        };
        let mut images = Vec::new();
        for image in gltf.images() {
            let gltf::image::Source::View { view, mime_type } = image.source() else {
                return Err(FormatError::Unreadable(
                    "an image outside the GLB".to_owned(),
                ));
            };
            let bytes = data(view.buffer())
                .and_then(|b| b.get(view.offset()..view.offset() + view.length()))
                .ok_or_else(|| FormatError::Unreadable("an image past its buffer".to_owned()))?;
            images.push(Image {
                bytes: bytes.to_vec(),
                mime: mime_type.to_owned(),
            });
        }
        let mut parts = Vec::new();
        let scene = gltf
            .default_scene()
            .or_else(|| gltf.scenes().next())
            .ok_or(FormatError::Empty)?;
        let identity: Matrix = [
            [1.0, 0.0, 0.0, 0.0],
            [0.0, 1.0, 0.0, 0.0],
            [0.0, 0.0, 1.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        let mut stack: Vec<(gltf::Node<'_>, Matrix)> =
            scene.nodes().map(|n| (n, identity)).collect();
        while let Some((node, parent)) = stack.pop() {
            let world = multiply(&parent, &node.transform().matrix());
            stack.extend(node.children().map(|child| (child, world)));
            let Some(mesh) = node.mesh() else { continue };
            for primitive in mesh.primitives() {
                if primitive.mode() != Mode::Triangles {
                    return Err(FormatError::Unreadable(format!(
                        "a primitive of mode {:?}: only triangles convert",
                        primitive.mode()
                    )));
                }
                let reader = primitive.reader(data);
                let positions: Vec<[f32; 3]> = reader
                    .read_positions()
                    .ok_or_else(|| {
                        FormatError::Unreadable("a primitive without positions".to_owned())
                    })?
                    .map(|p| transform(&world, p))
                    .collect();
                let indices: Vec<u32> = match reader.read_indices() {
                    Some(indices) => indices.into_u32().collect(),
                    None => (0..positions.len() as u32).collect(),
                };
                if indices.iter().any(|&i| i as usize >= positions.len()) {
                    return Err(FormatError::Unreadable(
                        "an index past its vertices".to_owned(),
                    ));
                }
                let pbr = primitive.material().pbr_metallic_roughness();
                let texture = pbr.base_color_texture();
                let transform = texture.as_ref().and_then(|info| info.texture_transform());
                let set = transform
                    .as_ref()
                    .and_then(|t| t.tex_coord())
                    .or_else(|| texture.as_ref().map(|info| info.tex_coord()))
                    .unwrap_or(0);
                let uvs = reader.read_tex_coords(set).map(|uvs| {
                    let uvs = uvs.into_f32();
                    match &transform {
                        Some(t) => uvs.map(texture_transform(t)).collect(),
                        None => uvs.collect(),
                    }
                });
                // A mirroring transform turns triangles inside out; keep them facing out.
                let indices = if determinant(&world) < 0.0 {
                    indices
                        .chunks_exact(3)
                        .flat_map(|t| [t[0], t[2], t[1]])
                        .collect()
                } else {
                    indices
                };
                parts.push(Part {
                    positions,
                    uvs,
                    indices,
                    image: texture.map(|info| info.texture().source().index()),
                    base_color: pbr.base_color_factor(),
                });
            }
        }
        if parts.iter().all(|p| p.indices.len() < 3) {
            return Err(FormatError::Empty);
        }
        Ok(Self { parts, images })
    }

    /// Every triangle of every part, as three world-space positions.
    pub fn triangles(&self) -> impl Iterator<Item = [[f32; 3]; 3]> + '_ {
        self.parts.iter().flat_map(|part| {
            part.indices.chunks_exact(3).map(|t| {
                [
                    part.positions[t[0] as usize],
                    part.positions[t[1] as usize],
                    part.positions[t[2] as usize],
                ]
            })
        })
    }

    /// The smallest box around every triangle: (min, max).
    pub fn bounds(&self) -> ([f32; 3], [f32; 3]) {
        let mut min = [f32::INFINITY; 3];
        let mut max = [f32::NEG_INFINITY; 3];
        for p in self.triangles().flatten() {
            for axis in 0..3 {
                min[axis] = min[axis].min(p[axis]);
                max[axis] = max[axis].max(p[axis]);
            }
        }
        (min, max)
    }
}
