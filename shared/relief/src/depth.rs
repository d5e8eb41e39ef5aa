//! A monocular depth estimate without a learned model: the subject is separated from the
//! background (by alpha, or by distance from the border colour), "inflated" so its interior
//! stands out, and modulated by blurred luminance for surface detail. Values are 0..1, with the
//! background at 0.

use image::RgbaImage;
use image::imageops::{self, FilterType};

/// A depth value per grid vertex, row-major, 0 (far) to 1 (near).
#[derive(Debug, Clone, PartialEq)]
pub struct DepthMap {
    pub width: usize,
    pub height: usize,
    pub values: Vec<f32>,
}

impl DepthMap {
    pub fn at(&self, x: usize, y: usize) -> f32 {
        self.values[y * self.width + x]
    }
}

/// Whether the image has meaningful transparency.
pub fn has_transparency(image: &RgbaImage) -> bool {
    let transparent = image.pixels().filter(|p| p.0[3] < 250).count();
    transparent * 100 > image.pixels().len()
}

fn smoothstep(edge0: f32, edge1: f32, x: f32) -> f32 {
    let t = ((x - edge0) / (edge1 - edge0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// Separable Gaussian blur of a row-major grid, clamping at the edges.
fn blur(values: &[f32], width: usize, height: usize, sigma: f32) -> Vec<f32> {
    if sigma < 0.3 {
        return values.to_vec();
    }
    let radius = (sigma * 3.0).ceil() as isize;
    let kernel: Vec<f32> = (-radius..=radius)
        .map(|i| (-((i * i) as f32) / (2.0 * sigma * sigma)).exp())
        .collect();
    let norm: f32 = kernel.iter().sum();
    let pass = |src: &[f32], horizontal: bool| -> Vec<f32> {
        let mut out = vec![0.0; src.len()];
        for y in 0..height {
            for x in 0..width {
                let mut acc = 0.0;
                for (k, weight) in kernel.iter().enumerate() {
                    let offset = k as isize - radius;
                    let (sx, sy) = if horizontal {
                        (
                            (x as isize + offset).clamp(0, width as isize - 1) as usize,
                            y,
                        )
                    } else {
                        (
                            x,
                            (y as isize + offset).clamp(0, height as isize - 1) as usize,
                        )
                    };
                    acc += weight * src[sy * width + sx];
                }
                out[y * width + x] = acc / norm;
            }
        }
        out
    };
    pass(&pass(values, true), false)
}

/// Median of each channel over the border pixels: the background colour estimate.
fn border_colour(image: &RgbaImage) -> [f32; 3] {
    let (w, h) = image.dimensions();
    let mut channels: [Vec<u8>; 3] = Default::default();
    let mut push = |x: u32, y: u32| {
        let p = image.get_pixel(x, y).0;
        for c in 0..3 {
            channels[c].push(p[c]);
        }
    };
    for x in 0..w {
        push(x, 0);
        push(x, h - 1);
    }
    for y in 0..h {
        push(0, y);
        push(w - 1, y);
    }
    channels.map(|mut values| {
        values.sort_unstable();
        f32::from(values[values.len() / 2])
    })
}

/// Foreground weight per pixel of `small`, 0..1.
fn foreground_mask(small: &RgbaImage) -> Vec<f32> {
    let mask: Vec<f32> = if has_transparency(small) {
        small.pixels().map(|p| f32::from(p.0[3]) / 255.0).collect()
    } else {
        let bg = border_colour(small);
        small
            .pixels()
            .map(|p| {
                let d: f32 = (0..3)
                    .map(|c| (f32::from(p.0[c]) - bg[c]).powi(2))
                    .sum::<f32>()
                    .sqrt()
                    / (255.0 * 3f32.sqrt());
                smoothstep(0.06, 0.2, d)
            })
            .collect()
    };
    let coverage = mask.iter().sum::<f32>() / mask.len() as f32;
    // No separable subject (a uniform frame, or a photo filled edge to edge): relief everywhere.
    if !(0.02..=0.97).contains(&coverage) {
        vec![1.0; mask.len()]
    } else {
        mask
    }
}

fn normalise_within(values: &mut [f32], mask: &[f32]) {
    let (mut lo, mut hi) = (f32::MAX, f32::MIN);
    for (v, m) in values.iter().zip(mask) {
        if *m > 0.5 {
            lo = lo.min(*v);
            hi = hi.max(*v);
        }
    }
    let span = hi - lo;
    for v in values.iter_mut() {
        *v = if span > 1e-6 {
            ((*v - lo) / span).clamp(0.0, 1.0)
        } else {
            0.5
        };
    }
}

/// Estimates depth on a `grid_w` x `grid_h` grid covering the whole image.
pub fn estimate(image: &RgbaImage, grid_w: u32, grid_h: u32) -> DepthMap {
    let small = imageops::resize(image, grid_w, grid_h, FilterType::Triangle);
    let (w, h) = (grid_w as usize, grid_h as usize);
    let scale = w.max(h) as f32;

    let mask = blur(&foreground_mask(&small), w, h, scale / 200.0);
    let luminance: Vec<f32> = small
        .pixels()
        .map(|p| {
            (0.2126 * f32::from(p.0[0]) + 0.7152 * f32::from(p.0[1]) + 0.0722 * f32::from(p.0[2]))
                / 255.0
        })
        .collect();
    let mut detail = blur(&luminance, w, h, scale / 100.0);
    normalise_within(&mut detail, &mask);
    let mut inflation = blur(&mask, w, h, scale / 16.0);
    normalise_within(&mut inflation, &mask);

    let values = mask
        .iter()
        .zip(&detail)
        .zip(&inflation)
        .map(|((m, d), i)| (m * (0.55 * i + 0.45 * d)).clamp(0.0, 1.0))
        .collect();
    DepthMap {
        width: w,
        height: h,
        values,
    }
}

/// A depth map computed elsewhere (a depth model's output image, bright = near), resampled to
/// the grid and stretched to 0..1.
pub fn from_depth_image(depth: &image::GrayImage, grid_w: u32, grid_h: u32) -> DepthMap {
    let small = imageops::resize(depth, grid_w, grid_h, FilterType::Triangle);
    let mut values: Vec<f32> = small.pixels().map(|p| f32::from(p.0[0]) / 255.0).collect();
    let everywhere = vec![1.0; values.len()];
    normalise_within(&mut values, &everywhere);
    DepthMap {
        width: grid_w as usize,
        height: grid_h as usize,
        values,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgba;

    #[test]
    fn depth_images_are_resampled_and_stretched() {
        let gradient = image::GrayImage::from_fn(100, 50, |x, _| image::Luma([(50 + x) as u8]));
        let depth = from_depth_image(&gradient, 20, 10);
        assert_eq!((depth.width, depth.height), (20, 10));
        assert!(depth.at(0, 5) < 0.05 && depth.at(19, 5) > 0.95);
        assert!(depth.at(5, 5) < depth.at(15, 5));
    }

    #[test]
    fn background_is_flat_and_subject_stands_out() {
        // A bright disc on a dark uniform background.
        let img = RgbaImage::from_fn(120, 80, |x, y| {
            let (dx, dy) = (x as f32 - 60.0, y as f32 - 40.0);
            if dx * dx + dy * dy < 25.0 * 25.0 {
                Rgba([230, 200, 180, 255])
            } else {
                Rgba([20, 30, 40, 255])
            }
        });
        let depth = estimate(&img, 60, 40);
        assert_eq!(
            (depth.width, depth.height, depth.values.len()),
            (60, 40, 2400)
        );
        assert!(depth.at(0, 0) < 0.05, "corner {}", depth.at(0, 0));
        assert!(depth.at(30, 20) > 0.6, "centre {}", depth.at(30, 20));
        assert!(depth.values.iter().all(|v| (0.0..=1.0).contains(v)));
    }

    #[test]
    fn alpha_decides_the_subject() {
        let img = RgbaImage::from_fn(64, 64, |x, _| {
            if x < 32 {
                Rgba([255, 255, 255, 0])
            } else {
                Rgba([255, 255, 255, 255])
            }
        });
        assert!(has_transparency(&img));
        let depth = estimate(&img, 32, 32);
        assert!(depth.at(2, 16) < 0.05);
        assert!(depth.at(28, 16) > 0.3);
    }

    #[test]
    fn uniform_image_gives_finite_depth() {
        let img = RgbaImage::from_pixel(10, 10, Rgba([128, 128, 128, 255]));
        let depth = estimate(&img, 10, 10);
        assert!(depth.values.iter().all(|v| v.is_finite()));
    }
}
