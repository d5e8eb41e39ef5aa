//! Wavefront OBJ for editors (Blender, Maya): a zip of `model.obj`, its `model.mtl` and the
//! textures the materials name, the names matching. One group and one material per part of the
//! scene; positions in the GLB's units and axes (Y up), texture coordinates with V flipped
//! (OBJ's origin is the image's bottom left, glTF's its top left).

use crate::scene::{FormatError, NamedFiles, Scene};
use std::fmt::Write as _;
use std::io::Write as _;
use zip::write::SimpleFileOptions;

/// The file extension of an image's media type.
fn extension(mime: &str) -> &'static str {
    match mime {
        "image/jpeg" => "jpg",
        "image/webp" => "webp",
        _ => "png",
    }
}

/// The OBJ text, the MTL text and the texture files (name, bytes) of `scene`.
pub fn files(scene: &Scene) -> (String, String, NamedFiles) {
    let mut obj = String::from("# image2model OBJ\nmtllib model.mtl\n");
    let mut mtl = String::from("# image2model MTL\n");
    let textures: NamedFiles = scene
        .images
        .iter()
        .enumerate()
        .map(|(i, image)| {
            (
                format!("texture_{i}.{}", extension(&image.mime)),
                image.bytes.clone(),
            )
        })
        .collect();
    let (mut next_v, mut next_vt) = (1u64, 1u64);
    for (n, part) in scene.parts.iter().enumerate() {
        let [r, g, b, _] = part.base_color;
        let _ = writeln!(
            mtl,
            "newmtl material_{n}\nKd {r} {g} {b}\nKa 0 0 0\nKs 0 0 0\nillum 1"
        );
        if let Some((name, _)) = part.image.and_then(|i| textures.get(i)) {
            let _ = writeln!(mtl, "map_Kd {name}");
        }
        let _ = writeln!(obj, "g part_{n}\nusemtl material_{n}");
        for p in &part.positions {
            let _ = writeln!(obj, "v {} {} {}", p[0], p[1], p[2]);
        }
        let uvs = part
            .uvs
            .as_ref()
            .filter(|uvs| uvs.len() == part.positions.len());
        if let Some(uvs) = uvs {
            for uv in uvs {
                let _ = writeln!(obj, "vt {} {}", uv[0], 1.0 - uv[1]);
            }
        }
        for t in part.indices.chunks_exact(3) {
            let corner = |i: u32| match uvs {
                Some(_) => format!("{}/{}", next_v + u64::from(i), next_vt + u64::from(i)),
                None => (next_v + u64::from(i)).to_string(),
            };
            let _ = writeln!(obj, "f {} {} {}", corner(t[0]), corner(t[1]), corner(t[2]));
        }
        next_v += part.positions.len() as u64;
        if uvs.is_some() {
            next_vt += part.positions.len() as u64;
        }
    }
    (obj, mtl, textures)
}

/// `scene` as a zip of `model.obj`, `model.mtl` and its textures.
pub fn encode(scene: &Scene) -> Result<Vec<u8>, FormatError> {
    let (obj, mtl, textures) = files(scene);
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let text = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    // Images are compressed already.
    let stored = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let entries = [
        ("model.obj".to_owned(), obj.into_bytes(), text),
        ("model.mtl".to_owned(), mtl.into_bytes(), text),
    ]
    .into_iter()
    .chain(
        textures
            .into_iter()
            .map(|(name, bytes)| (name, bytes, stored)),
    );
    for (name, bytes, options) in entries {
        zip.start_file(name, options)
            .and_then(|()| zip.write_all(&bytes).map_err(Into::into))
            .map_err(|e| FormatError::Unreadable(format!("zip: {e}")))?;
    }
    zip.finish()
        .map(std::io::Cursor::into_inner)
        .map_err(|e| FormatError::Unreadable(format!("zip: {e}")))
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
