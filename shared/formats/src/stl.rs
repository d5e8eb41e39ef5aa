//! Binary STL for printers and slicers: one closed mesh of every triangle, in millimetres, the
//! longest side [`LONGEST_SIDE_MM`], standing on the build plate (Z up, the lowest point at
//! 0). Seams are merged: every coordinate is snapped to a 1/10,000 mm grid, so vertices the GLB
//! keeps apart for their texture coordinates become one, and a triangle that collapses is
//! dropped. Winding is the GLB's (counter-clockwise seen from outside), and each facet's normal
//! is computed from it.

use crate::scene::{FormatError, Scene};

/// The model's longest side, in millimetres (STL has no unit; slicers read millimetres).
pub const LONGEST_SIDE_MM: f32 = 100.0;

/// The grid every coordinate is snapped to, in millimetres.
const SNAP_MM: f32 = 1e-4;

/// What the 80-byte header says (padded with spaces).
const HEADER: &str = "image2model binary STL; units: millimetres; Z up";

/// glTF's Y-up, metres-or-whatever, in Z-up millimetres with the box's corner at the origin
/// and the longest side `LONGEST_SIDE_MM`.
fn placement(scene: &Scene) -> impl Fn([f32; 3]) -> [f32; 3] {
    let (min, max) = scene.bounds();
    let longest = (0..3).map(|a| max[a] - min[a]).fold(0.0_f32, f32::max);
    let scale = if longest > 0.0 {
        LONGEST_SIDE_MM / longest
    } else {
        1.0
    };
    let snap = |v: f32| (v / SNAP_MM).round() * SNAP_MM;
    move |p: [f32; 3]| {
        // A quarter turn about X: glTF's +Y up becomes +Z up, -Z forward becomes +Y.
        let x = (p[0] - min[0]) * scale;
        let y = (max[2] - p[2]) * scale;
        let z = (p[1] - min[1]) * scale;
        [snap(x), snap(y), snap(z)]
    }
}

fn normal(t: &[[f32; 3]; 3]) -> Option<[f32; 3]> {
    let u = [t[1][0] - t[0][0], t[1][1] - t[0][1], t[1][2] - t[0][2]];
    let v = [t[2][0] - t[0][0], t[2][1] - t[0][1], t[2][2] - t[0][2]];
    let n = [
        u[1] * v[2] - u[2] * v[1],
        u[2] * v[0] - u[0] * v[2],
        u[0] * v[1] - u[1] * v[0],
    ];
    let length = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
    (length > 0.0).then(|| [n[0] / length, n[1] / length, n[2] / length])
}

/// The triangles as the STL holds them: placed, snapped, degenerate ones dropped.
pub fn facets(scene: &Scene) -> Vec<([f32; 3], [[f32; 3]; 3])> {
    let place = placement(scene);
    scene
        .triangles()
        .filter_map(|t| {
            let t = [place(t[0]), place(t[1]), place(t[2])];
            normal(&t).map(|n| (n, t))
        })
        .collect()
}

/// `scene` as a binary STL.
pub fn encode(scene: &Scene) -> Result<Vec<u8>, FormatError> {
    let facets = facets(scene);
    let count = u32::try_from(facets.len()).map_err(|_| FormatError::Empty)?;
    if count == 0 {
        return Err(FormatError::Empty);
    }
    let mut out = Vec::with_capacity(84 + facets.len() * 50);
    let mut header = [b' '; 80];
    header[..HEADER.len()].copy_from_slice(HEADER.as_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&count.to_le_bytes());
    for (normal, triangle) in &facets {
        for value in normal.iter().chain(triangle.iter().flatten()) {
            out.extend_from_slice(&value.to_le_bytes());
        }
        out.extend_from_slice(&0u16.to_le_bytes());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn relief_glb() -> Vec<u8> {
        let photo = image::RgbaImage::from_fn(96, 64, |x, y| {
            image::Rgba([(x * 2) as u8, (y * 3) as u8, ((x + y) % 255) as u8, 255])
        });
        let texture =
            image2model_relief::texture(&image::DynamicImage::ImageRgba8(photo.clone())).unwrap();
        image2model_relief::generate_glb(&photo, (&texture.0, texture.1), Some(2000))
    }

    type Key = [u32; 3];

    fn key(p: [f32; 3]) -> Key {
        p.map(f32::to_bits)
    }

    /// Each directed edge once, and its reverse once: closed, consistently wound.
    fn closed_and_consistent(facets: &[([f32; 3], [[f32; 3]; 3])]) -> Result<(), String> {
        let mut directed: HashMap<(Key, Key), usize> = HashMap::new();
        for (_, t) in facets {
            for (a, b) in [(t[0], t[1]), (t[1], t[2]), (t[2], t[0])] {
                *directed.entry((key(a), key(b))).or_default() += 1;
            }
        }
        for (&(a, b), &n) in &directed {
            if n != 1 {
                return Err(format!("edge {a:?}->{b:?} used {n} times in one direction"));
            }
            if directed.get(&(b, a)) != Some(&1) {
                return Err(format!(
                    "edge {a:?}->{b:?} has no opposite: the mesh is open"
                ));
            }
        }
        Ok(())
    }

    #[test]
    fn the_relief_becomes_a_closed_100_mm_solid_on_the_plate() {
        let scene = Scene::from_glb(&relief_glb()).unwrap();
        let stl = encode(&scene).unwrap();
        let count = u32::from_le_bytes(stl[80..84].try_into().unwrap()) as usize;
        assert_eq!(stl.len(), 84 + 50 * count);
        assert!(
            std::str::from_utf8(&stl[..80])
                .unwrap()
                .contains("millimetres")
        );
        let facets = facets(&scene);
        assert_eq!(facets.len(), count);
        closed_and_consistent(&facets).unwrap();
        let mut min = [f32::INFINITY; 3];
        let mut max = [f32::NEG_INFINITY; 3];
        for p in facets.iter().flat_map(|(_, t)| t.iter()) {
            for a in 0..3 {
                min[a] = min[a].min(p[a]);
                max[a] = max[a].max(p[a]);
            }
        }
        let longest = (0..3).map(|a| max[a] - min[a]).fold(0.0, f32::max);
        assert!((longest - LONGEST_SIDE_MM).abs() < 0.01, "{longest}");
        assert!(min.iter().all(|v| v.abs() < 0.01), "{min:?}");
        // Outward normals: the signed volume is positive.
        let volume: f32 = facets
            .iter()
            .map(|(_, [a, b, c])| {
                (a[0] * (b[1] * c[2] - b[2] * c[1]) - a[1] * (b[0] * c[2] - b[2] * c[0])
                    + a[2] * (b[0] * c[1] - b[1] * c[0]))
                    / 6.0
            })
            .sum();
        assert!(volume > 0.0, "{volume}");
    }

    #[test]
    fn what_cannot_be_read_is_refused_by_name() {
        assert!(matches!(
            Scene::from_glb(b"not a glb"),
            Err(FormatError::Unreadable(_))
        ));
    }
}
