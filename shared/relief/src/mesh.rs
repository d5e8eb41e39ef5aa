//! A closed relief mesh from a depth map: a displaced front surface, a flat back plate and side
//! walls joining their borders, with normals and texture coordinates mapping the photo onto the
//! front.

use super::depth::DepthMap;

/// Grid vertices along the longer image side when no face limit is given.
pub const DEFAULT_GRID_LONG_SIDE: u32 = 128;
/// The finest grid a face limit can ask for along the longer side (about 800,000 faces for a
/// square photo); a grid is never finer than the photo's own pixels either.
pub const MAX_GRID_LONG_SIDE: u32 = 448;
/// Thickness of the plate under the relief, in model units (the longer side is 1 unit).
pub const BASE_THICKNESS: f32 = 0.02;
/// Height of the relief at depth 1.
pub const RELIEF_HEIGHT: f32 = 0.15;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mesh {
    pub positions: Vec<[f32; 3]>,
    pub normals: Vec<[f32; 3]>,
    pub uvs: Vec<[f32; 2]>,
    pub indices: Vec<u32>,
}

impl Mesh {
    pub fn triangle_count(&self) -> usize {
        self.indices.len() / 3
    }

    /// Axis-aligned bounds `(min, max)`.
    pub fn bounds(&self) -> ([f32; 3], [f32; 3]) {
        let mut min = [f32::MAX; 3];
        let mut max = [f32::MIN; 3];
        for p in &self.positions {
            for a in 0..3 {
                min[a] = min[a].min(p[a]);
                max[a] = max[a].max(p[a]);
            }
        }
        (min, max)
    }
}

/// Triangles of the closed mesh on a `w` x `h` grid.
pub fn triangles_for(w: u32, h: u32) -> u64 {
    let (w, h) = (u64::from(w), u64::from(h));
    4 * (w - 1) * (h - 1) + 4 * ((w - 1) + (h - 1))
}

/// Vertices of the closed mesh on a `w` x `h` grid.
pub fn vertices_for(w: u32, h: u32) -> u64 {
    let (w, h) = (u64::from(w), u64::from(h));
    2 * w * h + 4 * (w + h)
}

/// The grid for an image: the default's, or the finest the face limit allows (at least 2 x 2).
pub fn grid_size(image_w: u32, image_h: u32, face_limit: Option<u32>) -> (u32, u32) {
    let long = image_w.max(image_h).max(1) as f64;
    let (rw, rh) = (image_w.max(1) as f64 / long, image_h.max(1) as f64 / long);
    let fit = |n: u32| {
        let n = f64::from(n);
        (
            ((n - 1.0) * rw).round() as u32 + 1,
            ((n - 1.0) * rh).round() as u32 + 1,
        )
    };
    // With a face limit, the finest grid within it: finer than the default when the limit
    // allows, up to the maximum and the photo's own resolution.
    let mut n = match face_limit {
        None => DEFAULT_GRID_LONG_SIDE,
        Some(_) => MAX_GRID_LONG_SIDE.min(image_w.max(image_h)).max(2),
    };
    if let Some(limit) = face_limit {
        while n > 2 {
            let (w, h) = fit(n);
            if triangles_for(w.max(2), h.max(2)) <= u64::from(limit) {
                break;
            }
            n -= 1;
        }
    }
    let (w, h) = fit(n);
    (w.max(2), h.max(2))
}

/// Grid points along one border, in order, and that border's outward normal.
type Side = (Vec<(usize, usize)>, [f32; 3]);

fn sub(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn cross(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn dot(a: [f32; 3], b: [f32; 3]) -> f32 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn normalise(v: [f32; 3]) -> [f32; 3] {
    let len = dot(v, v).sqrt();
    if len > 1e-12 {
        [v[0] / len, v[1] / len, v[2] / len]
    } else {
        [0.0, 0.0, 1.0]
    }
}

/// Builds the closed relief for `depth`, whose image has width/height `aspect`. The longer side
/// spans 1 unit, centred on the origin; the back plate lies at z = 0, the relief rises to +z.
pub fn relief_mesh(depth: &DepthMap, aspect: f32) -> Mesh {
    let (gw, gh) = (depth.width, depth.height);
    let (width, height) = if aspect >= 1.0 {
        (1.0, 1.0 / aspect)
    } else {
        (aspect, 1.0)
    };
    let x_at = |i: usize| -width / 2.0 + width * i as f32 / (gw - 1) as f32;
    let y_at = |j: usize| height / 2.0 - height * j as f32 / (gh - 1) as f32;
    let uv_at = |i: usize, j: usize| [i as f32 / (gw - 1) as f32, j as f32 / (gh - 1) as f32];
    let front_z = |i: usize, j: usize| BASE_THICKNESS + RELIEF_HEIGHT * depth.at(i, j);
    let front_pos = |i: usize, j: usize| [x_at(i), y_at(j), front_z(i, j)];

    let mut mesh = Mesh::default();
    // Front surface.
    for j in 0..gh {
        for i in 0..gw {
            let tx = sub(
                front_pos((i + 1).min(gw - 1), j),
                front_pos(i.saturating_sub(1), j),
            );
            let ty = sub(
                front_pos(i, j.saturating_sub(1)),
                front_pos(i, (j + 1).min(gh - 1)),
            );
            mesh.positions.push(front_pos(i, j));
            mesh.normals.push(normalise(cross(tx, ty)));
            mesh.uvs.push(uv_at(i, j));
        }
    }
    // Back plate.
    let back = (gw * gh) as u32;
    for j in 0..gh {
        for i in 0..gw {
            mesh.positions.push([x_at(i), y_at(j), 0.0]);
            mesh.normals.push([0.0, 0.0, -1.0]);
            mesh.uvs.push(uv_at(i, j));
        }
    }
    let idx = |i: usize, j: usize| (j * gw + i) as u32;
    for j in 0..gh - 1 {
        for i in 0..gw - 1 {
            let (a, b, c, d) = (idx(i, j), idx(i + 1, j), idx(i, j + 1), idx(i + 1, j + 1));
            mesh.indices.extend_from_slice(&[a, c, b, b, c, d]);
            mesh.indices.extend_from_slice(&[
                back + a,
                back + b,
                back + c,
                back + b,
                back + d,
                back + c,
            ]);
        }
    }
    // Side walls: one strip per side, each with its own outward normal.
    let sides: [Side; 4] = [
        ((0..gw).map(|i| (i, 0)).collect(), [0.0, 1.0, 0.0]),
        ((0..gw).map(|i| (i, gh - 1)).collect(), [0.0, -1.0, 0.0]),
        ((0..gh).map(|j| (0, j)).collect(), [-1.0, 0.0, 0.0]),
        ((0..gh).map(|j| (gw - 1, j)).collect(), [1.0, 0.0, 0.0]),
    ];
    for (points, outward) in sides {
        let start = mesh.positions.len() as u32;
        for &(i, j) in &points {
            let top = front_pos(i, j);
            mesh.positions.push(top);
            mesh.positions.push([top[0], top[1], 0.0]);
            mesh.normals.extend_from_slice(&[outward, outward]);
            mesh.uvs.extend_from_slice(&[uv_at(i, j), uv_at(i, j)]);
        }
        for k in 0..points.len() as u32 - 1 {
            let (t0, b0, t1, b1) = (
                start + 2 * k,
                start + 2 * k + 1,
                start + 2 * k + 2,
                start + 2 * k + 3,
            );
            let p = |v: u32| mesh.positions[v as usize];
            let facing = dot(cross(sub(p(b0), p(t0)), sub(p(t1), p(t0))), outward);
            if facing >= 0.0 {
                mesh.indices.extend_from_slice(&[t0, b0, t1, t1, b0, b1]);
            } else {
                mesh.indices.extend_from_slice(&[t0, t1, b0, t1, b1, b0]);
            }
        }
    }
    mesh
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn flat(w: usize, h: usize, v: f32) -> DepthMap {
        DepthMap {
            width: w,
            height: h,
            values: vec![v; w * h],
        }
    }

    #[test]
    fn counts_match_the_formulas_and_bounds_are_exact() {
        let mesh = relief_mesh(&flat(5, 4, 1.0), 2.0);
        assert_eq!(mesh.positions.len() as u64, vertices_for(5, 4));
        assert_eq!(mesh.triangle_count() as u64, triangles_for(5, 4));
        assert_eq!(mesh.normals.len(), mesh.positions.len());
        assert_eq!(mesh.uvs.len(), mesh.positions.len());
        let (min, max) = mesh.bounds();
        assert_eq!(min, [-0.5, -0.25, 0.0]);
        assert_eq!(max, [0.5, 0.25, BASE_THICKNESS + RELIEF_HEIGHT]);
    }

    /// Closed: every edge is shared by exactly two triangles, traversed once in each direction
    /// (consistent winding), once vertices at the same position are identified.
    #[test]
    fn mesh_is_closed_and_consistently_wound() {
        let depth = DepthMap {
            width: 6,
            height: 5,
            values: (0..30).map(|i| (i % 7) as f32 / 7.0).collect(),
        };
        let mesh = relief_mesh(&depth, 1.3);
        let key = |v: u32| mesh.positions[v as usize].map(f32::to_bits);
        let mut edges = std::collections::HashMap::new();
        for t in mesh.indices.chunks(3) {
            for (a, b) in [(t[0], t[1]), (t[1], t[2]), (t[2], t[0])] {
                *edges.entry((key(a), key(b))).or_insert(0) += 1;
            }
        }
        for ((a, b), n) in &edges {
            assert_eq!(*n, 1, "directed edge used {n} times");
            assert_eq!(edges.get(&(*b, *a)), Some(&1), "edge without its opposite");
        }
    }

    #[test]
    fn front_normals_point_up_on_a_flat_relief() {
        let mesh = relief_mesh(&flat(4, 4, 0.5), 1.0);
        assert!(mesh.normals[..16].iter().all(|n| (n[2] - 1.0).abs() < 1e-6));
    }

    proptest! {
        #[test]
        fn grid_respects_any_face_limit(w in 1u32..5000, h in 1u32..5000, limit in 500u32..200_000) {
            let (gw, gh) = grid_size(w, h, Some(limit));
            prop_assert!(gw >= 2 && gh >= 2);
            prop_assert!(triangles_for(gw, gh) <= u64::from(limit) || (gw.max(gh) <= 3));
            prop_assert!(gw.max(gh) <= MAX_GRID_LONG_SIDE.max(3));
        }

        #[test]
        fn a_higher_face_limit_never_gives_fewer_faces(
            w in 16u32..3000, h in 16u32..3000, low in 500u32..1_000_000, more in 0u32..1_000_000,
        ) {
            let faces = |limit| {
                let (gw, gh) = grid_size(w, h, Some(limit));
                triangles_for(gw, gh)
            };
            prop_assert!(faces(low) <= faces(low.saturating_add(more)));
        }
    }

    #[test]
    fn a_face_limit_above_the_default_detail_gives_more_up_to_the_maximum() {
        let default = {
            let (w, h) = grid_size(640, 427, None);
            triangles_for(w, h)
        };
        let faces = |limit: u32| {
            let (w, h) = grid_size(640, 427, Some(limit));
            triangles_for(w, h)
        };
        assert!(
            faces(20_000) < default,
            "a low limit gives less than the default"
        );
        assert!(
            faces(200_000) > 3 * default,
            "a high limit gives more than the default"
        );
        assert!(faces(200_000) <= 200_000);
        let finest = faces(800_000);
        assert_eq!(grid_size(640, 427, Some(800_000)).0, MAX_GRID_LONG_SIDE);
        assert_eq!(faces(2_000_000), finest, "no finer than the maximum grid");
        let square = grid_size(1000, 1000, Some(800_000));
        assert!(triangles_for(square.0, square.1) > 790_000);
        // A small photo's grid is no finer than its pixels.
        assert_eq!(grid_size(96, 64, Some(800_000)).0, 96);
    }
}
