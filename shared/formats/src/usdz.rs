//! USDZ for AR Quick Look (iOS, visionOS): a package whose first entry is the `.usdc` root
//! layer, written by the `openusd` crate, followed by its textures as PNG or JPEG, every entry
//! stored uncompressed at a 64-byte-aligned offset. One `Mesh` per part of the scene, each bound
//! to a `UsdPreviewSurface` material that reads the part's base-colour texture through its `st`
//! primvar; Y up and metres, as in glTF.

use crate::scene::{FormatError, NamedFiles, Part, Scene};
use openusd::gf;
use openusd::sdf::{
    self, ChildrenKey, FieldKey, PathListOp, SpecType, Specifier, TokenListOp, Value, Variability,
};
use openusd::usdc::CrateWriter;
use openusd::usdz::ArchiveWriter;
use std::io::Cursor;

/// The root layer's name inside the package.
pub const ROOT_LAYER: &str = "model.usdc";

/// Why `openusd` refused to write: a bug here, never the model's fault, but said rather than hidden.
fn write_failed(error: impl std::fmt::Display) -> FormatError {
    FormatError::Unwritable(format!("USD: {error}"))
}

/// A prim or property path built from parts this module names itself.
fn path(text: &str) -> Result<sdf::Path, FormatError> {
    sdf::path(text).map_err(write_failed)
}

/// The layer being written: specs added by path.
struct Layer {
    data: sdf::Data,
}

impl Layer {
    fn prim(
        &mut self,
        at: &str,
        type_name: &str,
        children: &[String],
        properties: &[&str],
    ) -> Result<&mut sdf::SpecData, FormatError> {
        let spec = self.data.create_spec(path(at)?, SpecType::Prim);
        spec.add(FieldKey::Specifier, Value::Specifier(Specifier::Def));
        spec.add(FieldKey::TypeName, Value::Token(type_name.into()));
        if !children.is_empty() {
            spec.add(
                ChildrenKey::PrimChildren,
                Value::TokenVec(children.iter().map(|c| c.as_str().into()).collect()),
            );
        }
        if !properties.is_empty() {
            spec.add(
                ChildrenKey::PropertyChildren,
                Value::TokenVec(properties.iter().map(|&p| p.into()).collect()),
            );
        }
        Ok(spec)
    }

    /// An attribute of `prim`: its type, and its value or its connection when it has one.
    fn attribute(
        &mut self,
        prim: &str,
        name: &str,
        type_name: &str,
        uniform: bool,
        value: Option<Value>,
    ) -> Result<&mut sdf::SpecData, FormatError> {
        let at = path(prim)?.append_property(name).map_err(write_failed)?;
        let spec = self.data.create_spec(at, SpecType::Attribute);
        spec.add(FieldKey::TypeName, Value::Token(type_name.into()));
        spec.add(FieldKey::Custom, Value::Bool(false));
        if uniform {
            spec.add(
                FieldKey::Variability,
                Value::Variability(Variability::Uniform),
            );
        }
        if let Some(value) = value {
            spec.add(FieldKey::Default, value);
        }
        Ok(spec)
    }

    /// An attribute connected to another prim's output.
    fn connection(
        &mut self,
        prim: &str,
        name: &str,
        type_name: &str,
        source: &str,
    ) -> Result<(), FormatError> {
        let source = path(source)?;
        let spec = self.attribute(prim, name, type_name, false, None)?;
        spec.add(
            FieldKey::ConnectionPaths,
            Value::PathListOp(PathListOp::explicit([source])),
        );
        Ok(())
    }
}

/// The media type USDZ accepts for `mime`'s image, and the bytes to store: PNG and JPEG as they
/// are, anything else (WebP) re-encoded as PNG.
fn texture(image: &crate::scene::Image) -> Result<(&'static str, Vec<u8>), FormatError> {
    match image.mime.as_str() {
        "image/png" => Ok(("png", image.bytes.clone())),
        "image/jpeg" => Ok(("jpg", image.bytes.clone())),
        other => {
            let decoded = image::load_from_memory(&image.bytes).map_err(|e| {
                FormatError::Unreadable(format!("a {other} texture that does not decode: {e}"))
            })?;
            let mut png = Vec::new();
            decoded
                .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
                .map_err(|e| FormatError::Unwritable(format!("a texture as PNG: {e}")))?;
            Ok(("png", png))
        }
    }
}

/// The part's mesh prim under `/Model/Part_{n}`.
fn mesh(layer: &mut Layer, n: usize, part: &Part, textured: bool) -> Result<(), FormatError> {
    let prim = format!("/Model/Part_{n}");
    let mut properties = vec![
        "extent",
        "faceVertexCounts",
        "faceVertexIndices",
        "material:binding",
        "points",
        "subdivisionScheme",
    ];
    let uvs = part
        .uvs
        .as_ref()
        .filter(|uvs| textured && uvs.len() == part.positions.len());
    if uvs.is_some() {
        properties.push("primvars:st");
    }
    let spec = layer.prim(&prim, "Mesh", &[], &properties)?;
    spec.add(
        FieldKey::ApiSchemas,
        Value::TokenListOp(TokenListOp::prepended(["MaterialBindingAPI".into()])),
    );
    let (mut min, mut max) = ([f32::INFINITY; 3], [f32::NEG_INFINITY; 3]);
    for p in &part.positions {
        for axis in 0..3 {
            min[axis] = min[axis].min(p[axis]);
            max[axis] = max[axis].max(p[axis]);
        }
    }
    let triangles = part.indices.len() / 3;
    let indices = part.indices[..triangles * 3]
        .iter()
        .map(|&i| i32::try_from(i).map_err(|_| FormatError::Unwritable("too many vertices".into())))
        .collect::<Result<Vec<i32>, _>>()?;
    layer.attribute(
        &prim,
        "extent",
        "float3[]",
        false,
        Some(Value::Vec3fVec(vec![min.into(), max.into()])),
    )?;
    layer.attribute(
        &prim,
        "faceVertexCounts",
        "int[]",
        false,
        Some(Value::IntVec(vec![3; triangles])),
    )?;
    layer.attribute(
        &prim,
        "faceVertexIndices",
        "int[]",
        false,
        Some(Value::IntVec(indices)),
    )?;
    layer.attribute(
        &prim,
        "points",
        "point3f[]",
        false,
        Some(Value::Vec3fVec(
            part.positions.iter().map(|&p| p.into()).collect(),
        )),
    )?;
    layer.attribute(
        &prim,
        "subdivisionScheme",
        "token",
        true,
        Some(Value::Token("none".into())),
    )?;
    if let Some(uvs) = uvs {
        let spec = layer.attribute(
            &prim,
            "primvars:st",
            "texCoord2f[]",
            false,
            Some(Value::Vec2fVec(
                uvs.iter().map(|uv| gf::vec2f(uv[0], 1.0 - uv[1])).collect(),
            )),
        )?;
        spec.add("interpolation", Value::Token("vertex".into()));
    }
    let binding = path(&prim)?
        .append_property("material:binding")
        .map_err(write_failed)?;
    let spec = layer.data.create_spec(binding, SpecType::Relationship);
    spec.add(FieldKey::Custom, Value::Bool(false));
    spec.add(
        FieldKey::Variability,
        Value::Variability(Variability::Uniform),
    );
    spec.add(
        FieldKey::TargetPaths,
        Value::PathListOp(PathListOp::explicit([path(&format!(
            "/Model/Materials/Material_{n}"
        ))?])),
    );
    Ok(())
}

/// The part's material under `/Model/Materials/Material_{n}`: a preview surface whose diffuse
/// colour is the base-colour texture (`texture` names it inside the package) or the colour factor.
fn material(
    layer: &mut Layer,
    n: usize,
    part: &Part,
    texture: Option<&str>,
) -> Result<(), FormatError> {
    let prim = format!("/Model/Materials/Material_{n}");
    let shaders: Vec<String> = match texture {
        Some(_) => vec!["Surface".into(), "Texture".into(), "Coordinates".into()],
        None => vec!["Surface".into()],
    };
    layer.prim(&prim, "Material", &shaders, &["outputs:surface"])?;
    let surface = format!("{prim}/Surface");
    layer.connection(
        &prim,
        "outputs:surface",
        "token",
        &format!("{surface}.outputs:surface"),
    )?;
    layer.prim(
        &surface,
        "Shader",
        &[],
        &[
            "info:id",
            "inputs:diffuseColor",
            "inputs:metallic",
            "inputs:opacity",
            "inputs:roughness",
            "outputs:surface",
        ],
    )?;
    layer.attribute(
        &surface,
        "info:id",
        "token",
        true,
        Some(Value::Token("UsdPreviewSurface".into())),
    )?;
    let [r, g, b, a] = part.base_color;
    layer.attribute(
        &surface,
        "inputs:metallic",
        "float",
        false,
        Some(Value::Float(0.0)),
    )?;
    layer.attribute(
        &surface,
        "inputs:roughness",
        "float",
        false,
        Some(Value::Float(0.9)),
    )?;
    layer.attribute(
        &surface,
        "inputs:opacity",
        "float",
        false,
        Some(Value::Float(a)),
    )?;
    layer.attribute(&surface, "outputs:surface", "token", false, None)?;
    let Some(file) = texture else {
        layer.attribute(
            &surface,
            "inputs:diffuseColor",
            "color3f",
            false,
            Some(Value::Vec3f([r, g, b].into())),
        )?;
        return Ok(());
    };
    let reader = format!("{prim}/Texture");
    let coordinates = format!("{prim}/Coordinates");
    layer.connection(
        &surface,
        "inputs:diffuseColor",
        "color3f",
        &format!("{reader}.outputs:rgb"),
    )?;
    layer.prim(
        &reader,
        "Shader",
        &[],
        &[
            "info:id",
            "inputs:file",
            "inputs:scale",
            "inputs:sourceColorSpace",
            "inputs:st",
            "inputs:wrapS",
            "inputs:wrapT",
            "outputs:rgb",
        ],
    )?;
    layer.attribute(
        &reader,
        "info:id",
        "token",
        true,
        Some(Value::Token("UsdUVTexture".into())),
    )?;
    layer.attribute(
        &reader,
        "inputs:file",
        "asset",
        false,
        Some(Value::AssetPath(file.into())),
    )?;
    layer.attribute(
        &reader,
        "inputs:scale",
        "float4",
        false,
        Some(Value::Vec4f([r, g, b, a].into())),
    )?;
    layer.attribute(
        &reader,
        "inputs:sourceColorSpace",
        "token",
        false,
        Some(Value::Token("sRGB".into())),
    )?;
    for wrap in ["inputs:wrapS", "inputs:wrapT"] {
        layer.attribute(
            &reader,
            wrap,
            "token",
            false,
            Some(Value::Token("repeat".into())),
        )?;
    }
    layer.connection(
        &reader,
        "inputs:st",
        "float2",
        &format!("{coordinates}.outputs:result"),
    )?;
    layer.attribute(&reader, "outputs:rgb", "float3", false, None)?;
    layer.prim(
        &coordinates,
        "Shader",
        &[],
        &["info:id", "inputs:varname", "outputs:result"],
    )?;
    layer.attribute(
        &coordinates,
        "info:id",
        "token",
        true,
        Some(Value::Token("UsdPrimvarReader_float2".into())),
    )?;
    layer.attribute(
        &coordinates,
        "inputs:varname",
        "string",
        false,
        Some(Value::String("st".into())),
    )?;
    layer.attribute(&coordinates, "outputs:result", "float2", false, None)?;
    Ok(())
}

/// The root layer of `scene` (crate format) and the textures it names, in package order.
pub fn files(scene: &Scene) -> Result<(Vec<u8>, NamedFiles), FormatError> {
    // The images a material shows, by image index; the others (metal-roughness maps) stay out.
    let textures = scene
        .images
        .iter()
        .enumerate()
        .map(|(i, image)| {
            if !scene.parts.iter().any(|p| p.image == Some(i)) {
                return Ok(None);
            }
            let (extension, bytes) = texture(image)?;
            Ok(Some((format!("textures/texture_{i}.{extension}"), bytes)))
        })
        .collect::<Result<Vec<_>, FormatError>>()?;
    let mut layer = Layer {
        data: sdf::Data::new(),
    };
    let root = layer
        .data
        .create_spec(sdf::Path::abs_root(), SpecType::PseudoRoot);
    root.add(
        ChildrenKey::PrimChildren,
        Value::TokenVec(vec!["Model".into()]),
    );
    root.add(FieldKey::DefaultPrim, Value::Token("Model".into()));
    root.add("upAxis", Value::Token("Y".into()));
    root.add("metersPerUnit", Value::Double(1.0));
    let parts: Vec<String> = (0..scene.parts.len())
        .map(|n| format!("Part_{n}"))
        .chain(["Materials".to_owned()])
        .collect();
    let model = layer.prim("/Model", "Xform", &parts, &[])?;
    model.add(FieldKey::Kind, Value::Token("component".into()));
    let materials: Vec<String> = (0..scene.parts.len())
        .map(|n| format!("Material_{n}"))
        .collect();
    layer.prim("/Model/Materials", "Scope", &materials, &[])?;
    for (n, part) in scene.parts.iter().enumerate() {
        let file = part
            .image
            .and_then(|i| textures.get(i))
            .and_then(Option::as_ref)
            .map(|(name, _)| name.as_str());
        let textured = file.is_some() && part.uvs.is_some();
        mesh(&mut layer, n, part, textured)?;
        material(&mut layer, n, part, file.filter(|_| textured))?;
    }
    let mut usdc = Cursor::new(Vec::new());
    CrateWriter::write(&layer.data, &mut usdc).map_err(write_failed)?;
    Ok((usdc.into_inner(), textures.into_iter().flatten().collect()))
}

/// `scene` as a USDZ package: the root layer first, then its textures.
pub fn encode(scene: &Scene) -> Result<Vec<u8>, FormatError> {
    let (usdc, textures) = files(scene)?;
    let mut archive = ArchiveWriter::new(Cursor::new(Vec::new()));
    archive.add_layer(ROOT_LAYER, &usdc).map_err(write_failed)?;
    for (name, bytes) in &textures {
        archive.add_layer(name, bytes).map_err(write_failed)?;
    }
    Ok(archive.finish().map_err(write_failed)?.into_inner())
}
