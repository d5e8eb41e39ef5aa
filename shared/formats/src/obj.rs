//! Wavefront OBJ for editors (Blender, Maya): a zip of `model.obj`, its `model.mtl` and the
//! textures the materials name, the names matching. One group and one material per part of the
//! scene; positions in the GLB's units and axes (Y up), texture coordinates with V flipped
//! (OBJ's origin is the image's bottom left, glTF's its top left).

use crate::scene::{FormatError, Scene};
use std::fmt::Write as _;
use std::io::Write;
use zip::write::SimpleFileOptions;

/// The file extension of an image's media type.
fn extension(mime: &str) -> &'static str {
    match mime {
        "image/jpeg" => "jpg",
        "image/webp" => "webp",
        _ => "png",
    }
}

/// The package's name of each image a material uses (`texture_N.ext`), by image index.
fn texture_names(scene: &Scene) -> Vec<Option<String>> {
    let mut names = vec![None; scene.images.len()];
    for index in scene.parts.iter().filter_map(|p| p.image) {
        if let (Some(slot), Some(image)) = (names.get_mut(index), scene.images.get(index)) {
            *slot = Some(format!("texture_{index}.{}", extension(&image.mime)));
        }
    }
    names
}

/// The MTL text of `scene`: one material per part, its colour and its texture's name.
fn mtl(scene: &Scene, textures: &[Option<String>]) -> String {
    let mut mtl = String::from("# image2model MTL\n");
    for (n, part) in scene.parts.iter().enumerate() {
        let [r, g, b, _] = part.base_color;
        let _ = writeln!(
            mtl,
            "newmtl material_{n}\nKd {r} {g} {b}\nKa 0 0 0\nKs 0 0 0\nillum 1"
        );
        if let Some(name) = part
            .image
            .and_then(|i| textures.get(i))
            .and_then(Option::as_ref)
        {
            let _ = writeln!(mtl, "map_Kd {name}");
        }
    }
    mtl
}

/// Writes the OBJ text of `scene` to `out`, as it goes (a model of a million faces is tens of
/// megabytes of text, never held whole).
fn write_obj(scene: &Scene, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "# image2model OBJ\nmtllib model.mtl")?;
    let (mut next_v, mut next_vt) = (1u64, 1u64);
    for (n, part) in scene.parts.iter().enumerate() {
        writeln!(out, "g part_{n}\nusemtl material_{n}")?;
        for p in &part.positions {
            writeln!(out, "v {} {} {}", p[0], p[1], p[2])?;
        }
        let uvs = part
            .uvs
            .as_ref()
            .filter(|uvs| uvs.len() == part.positions.len());
        if let Some(uvs) = uvs {
            for uv in uvs {
                writeln!(out, "vt {} {}", uv[0], 1.0 - uv[1])?;
            }
        }
        for t in part.indices.chunks_exact(3) {
            let [a, b, c] = [t[0], t[1], t[2]].map(|i| next_v + u64::from(i));
            if uvs.is_some() {
                let [ta, tb, tc] = [t[0], t[1], t[2]].map(|i| next_vt + u64::from(i));
                writeln!(out, "f {a}/{ta} {b}/{tb} {c}/{tc}")?;
            } else {
                writeln!(out, "f {a} {b} {c}")?;
            }
        }
        next_v += part.positions.len() as u64;
        if uvs.is_some() {
            next_vt += part.positions.len() as u64;
        }
    }
    Ok(())
}

/// `scene` as a zip of `model.obj`, `model.mtl` and the textures its materials use.
pub fn encode(scene: &Scene) -> Result<Vec<u8>, FormatError> {
    let failed = |e: &dyn std::fmt::Display| FormatError::Unwritable(format!("zip: {e}"));
    let textures = texture_names(scene);
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let text = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    // Images are compressed already.
    let stored = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("model.obj", text).map_err(|e| failed(&e))?;
    {
        let mut out = std::io::BufWriter::with_capacity(1 << 16, &mut zip);
        write_obj(scene, &mut out).map_err(|e| failed(&e))?;
        out.flush().map_err(|e| failed(&e))?;
    }
    zip.start_file("model.mtl", text).map_err(|e| failed(&e))?;
    zip.write_all(mtl(scene, &textures).as_bytes())
        .map_err(|e| failed(&e))?;
    for (name, image) in textures.iter().zip(&scene.images) {
        if let Some(name) = name {
            zip.start_file(name.as_str(), stored)
                .map_err(|e| failed(&e))?;
            zip.write_all(&image.bytes).map_err(|e| failed(&e))?;
        }
    }
    zip.finish()
        .map(std::io::Cursor::into_inner)
        .map_err(|e| failed(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_zip_holds_the_obj_its_mtl_and_the_texture_it_names() {
        let photo =
            image::RgbaImage::from_fn(48, 32, |x, y| image::Rgba([x as u8, y as u8, 9, 255]));
        let texture =
            image2model_relief::texture(&image::DynamicImage::ImageRgba8(photo.clone())).unwrap();
        let glb = image2model_relief::generate_glb(&photo, (&texture.0, texture.1), Some(1000));
        let scene = Scene::from_glb(&glb).unwrap();
        let zip = encode(&scene).unwrap();
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
        let mut read = |name: &str| {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut archive.by_name(name).unwrap(), &mut text).unwrap();
            text
        };
        let (obj, mtl) = (read("model.obj"), read("model.mtl"));
        let count = |prefix: &str| obj.lines().filter(|l| l.starts_with(prefix)).count();
        let triangles: usize = scene.parts.iter().map(|p| p.indices.len() / 3).sum();
        let vertices: usize = scene.parts.iter().map(|p| p.positions.len()).sum();
        assert_eq!(
            (count("f "), count("v "), count("vt ")),
            (triangles, vertices, vertices)
        );
        assert!(obj.contains("mtllib model.mtl"));
        let texture_name = mtl
            .lines()
            .find_map(|l| l.strip_prefix("map_Kd "))
            .expect("the material names its texture");
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut archive.by_name(texture_name).unwrap(), &mut bytes)
            .unwrap();
        assert_eq!(bytes, scene.images[0].bytes);
    }
}
