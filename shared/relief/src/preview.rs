//! A preview image of a relief: the textured mesh rasterised in software (perspective, z-buffer,
//! perspective-correct texture coordinates, one directional light) from three-quarters above and
//! to the left, on the viewer's neutral background, encoded as PNG.

use super::mesh::Mesh;
use image::{ImageFormat, Rgba, RgbaImage};
use std::io::Cursor;

/// The viewer's empty background.
pub const BACKGROUND: [u8; 4] = [223, 227, 234, 255];
const YAW: f32 = -0.55; // radians around the vertical axis
const PITCH: f32 = 0.45; // radians of looking down
const LIGHT: [f32; 3] = [0.35, 0.55, 0.76];

fn rotate(p: [f32; 3]) -> [f32; 3] {
    let (sy, cy) = YAW.sin_cos();
    let (sp, cp) = PITCH.sin_cos();
    // Around y, then around x.
    let x = cy * p[0] + sy * p[2];
    let z = -sy * p[0] + cy * p[2];
    let y = cp * p[1] - sp * z;
    let z = sp * p[1] + cp * z;
    [x, y, z]
}

fn sample(texture: &RgbaImage, uv: [f32; 2]) -> [f32; 3] {
    let (w, h) = texture.dimensions();
    let x = ((uv[0].clamp(0.0, 1.0) * (w - 1) as f32).round() as u32).min(w - 1);
    let y = ((uv[1].clamp(0.0, 1.0) * (h - 1) as f32).round() as u32).min(h - 1);
    let p = texture.get_pixel(x, y).0;
    [f32::from(p[0]), f32::from(p[1]), f32::from(p[2])]
}

/// Renders `mesh`, textured with `texture`, into a `size` x `size` image.
pub fn render(mesh: &Mesh, texture: &RgbaImage, size: u32) -> RgbaImage {
    let mut image = RgbaImage::from_pixel(size, size, Rgba(BACKGROUND));
    if mesh.positions.is_empty() || texture.width() == 0 || texture.height() == 0 || size == 0 {
        return image;
    }
    let (min, max) = mesh.bounds();
    let centre = [0, 1, 2].map(|a| (min[a] + max[a]) / 2.0);
    let radius = mesh
        .positions
        .iter()
        .map(|p| {
            (0..3)
                .map(|a| (p[a] - centre[a]).powi(2))
                .sum::<f32>()
                .sqrt()
        })
        .fold(0.0_f32, f32::max)
        .max(1e-6);
    let distance = radius * 3.0;
    let focal = size as f32 * 0.5 * distance / (radius * 1.1);
    let half = size as f32 / 2.0;
    // Camera space: x right, y up, w = distance to the eye (larger is farther).
    let projected: Vec<([f32; 2], f32)> = mesh
        .positions
        .iter()
        .map(|p| {
            let r = rotate([p[0] - centre[0], p[1] - centre[1], p[2] - centre[2]]);
            let w = distance - r[2];
            ([half + focal * r[0] / w, half - focal * r[1] / w], w)
        })
        .collect();
    let normals: Vec<[f32; 3]> = mesh.normals.iter().map(|n| rotate(*n)).collect();
    let mut depth = vec![f32::INFINITY; (size * size) as usize];
    for tri in mesh.indices.chunks_exact(3) {
        let [a, b, c] = [tri[0], tri[1], tri[2]].map(|i| i as usize);
        let (Some(pa), Some(pb), Some(pc)) = (projected.get(a), projected.get(b), projected.get(c))
        else {
            continue;
        };
        let area =
            (pb.0[0] - pa.0[0]) * (pc.0[1] - pa.0[1]) - (pb.0[1] - pa.0[1]) * (pc.0[0] - pa.0[0]);
        if area.abs() < 1e-9 {
            continue;
        }
        let xs = [pa.0[0], pb.0[0], pc.0[0]];
        let ys = [pa.0[1], pb.0[1], pc.0[1]];
        let x0 = xs.iter().copied().fold(f32::MAX, f32::min).floor().max(0.0) as u32;
        let x1 = xs
            .iter()
            .copied()
            .fold(f32::MIN, f32::max)
            .ceil()
            .min(size as f32 - 1.0);
        let y0 = ys.iter().copied().fold(f32::MAX, f32::min).floor().max(0.0) as u32;
        let y1 = ys
            .iter()
            .copied()
            .fold(f32::MIN, f32::max)
            .ceil()
            .min(size as f32 - 1.0);
        if x1 < 0.0 || y1 < 0.0 {
            continue;
        }
        let uv = |i: usize| mesh.uvs.get(i).copied().unwrap_or([0.0, 0.0]);
        let normal = |i: usize| normals.get(i).copied().unwrap_or([0.0, 0.0, 1.0]);
        for y in y0..=y1 as u32 {
            for x in x0..=x1 as u32 {
                let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
                let edge = |p: &([f32; 2], f32), q: &([f32; 2], f32)| {
                    (q.0[0] - p.0[0]) * (py - p.0[1]) - (q.0[1] - p.0[1]) * (px - p.0[0])
                };
                let (wa, wb, wc) = (
                    edge(pb, pc) / area,
                    edge(pc, pa) / area,
                    edge(pa, pb) / area,
                );
                if wa < 0.0 || wb < 0.0 || wc < 0.0 {
                    continue;
                }
                // Perspective-correct weights.
                let (ia, ib, ic) = (wa / pa.1, wb / pb.1, wc / pc.1);
                let inv = ia + ib + ic;
                let w = 1.0 / inv;
                let slot = (y * size + x) as usize;
                if w >= depth[slot] {
                    continue;
                }
                depth[slot] = w;
                let mix2 = |f: &dyn Fn(usize) -> [f32; 2]| {
                    [0, 1].map(|k| (f(a)[k] * ia + f(b)[k] * ib + f(c)[k] * ic) * w)
                };
                let mix3 = |f: &dyn Fn(usize) -> [f32; 3]| {
                    [0, 1, 2].map(|k| (f(a)[k] * ia + f(b)[k] * ib + f(c)[k] * ic) * w)
                };
                let n = mix3(&normal);
                let len = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt().max(1e-6);
                let lambert = ((n[0] * LIGHT[0] + n[1] * LIGHT[1] + n[2] * LIGHT[2]) / len).abs();
                let shade = 0.45 + 0.55 * lambert;
                let colour = sample(texture, mix2(&uv));
                let [r, g, b] = colour.map(|v| (v * shade).clamp(0.0, 255.0) as u8);
                image.put_pixel(x, y, Rgba([r, g, b, 255]));
            }
        }
    }
    image
}

/// [`render`] encoded as PNG.
pub fn render_png(
    mesh: &Mesh,
    texture: &RgbaImage,
    size: u32,
) -> Result<Vec<u8>, image::ImageError> {
    let mut out = Cursor::new(Vec::new());
    render(mesh, texture, size).write_to(&mut out, ImageFormat::Png)?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::depth;
    use crate::mesh::relief_mesh;

    fn photo() -> RgbaImage {
        RgbaImage::from_fn(120, 80, |x, _| {
            if x < 60 {
                Rgba([200, 30, 30, 255])
            } else {
                Rgba([30, 30, 200, 255])
            }
        })
    }

    #[test]
    fn the_relief_fills_the_middle_of_the_preview_with_its_texture() {
        let photo = photo();
        let map = depth::estimate(&photo, 40, 27);
        let mesh = relief_mesh(&map, 1.5);
        let image = render(&mesh, &photo, 128);
        let drawn = image.pixels().filter(|p| p.0 != BACKGROUND).count();
        let share = drawn as f32 / (128.0 * 128.0);
        assert!(share > 0.25 && share < 0.95, "{share}");
        assert_ne!(
            image.get_pixel(64, 64).0,
            BACKGROUND,
            "the centre shows the model"
        );
        assert_eq!(
            image.get_pixel(0, 0).0,
            BACKGROUND,
            "the corner is background"
        );
        // Both halves of the texture show: red on one side, blue on the other.
        let dominant = |mine: u8, other: u8| u16::from(mine) > 2 * u16::from(other).max(20);
        let reddish = image.pixels().filter(|p| dominant(p.0[0], p.0[2])).count();
        let bluish = image.pixels().filter(|p| dominant(p.0[2], p.0[0])).count();
        assert!(reddish > 100 && bluish > 100, "{reddish} {bluish}");
        let png = render_png(&mesh, &photo, 64).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    }

    #[test]
    fn nothing_to_draw_is_an_empty_background() {
        let image = render(&Mesh::default(), &photo(), 16);
        assert!(image.pixels().all(|p| p.0 == BACKGROUND));
    }
}
