//! Benchmark of the built-in generator: photo bytes -> GLB, per stage, on the shared photos
//! (or a generated photo when they are absent). Prints milliseconds per stage, output size,
//! triangle count and the process's peak resident memory.
//!
//! Run with `cargo bench -p image2model-relief --bench relief`.

use image::{ImageBuffer, Rgb};
use image2model_relief::{self as relief, mesh};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const RUNS: u32 = 5;

fn photos() -> Vec<(String, Vec<u8>)> {
    let dir = std::env::var_os("PHOTO_FIXTURES").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/photos"),
        PathBuf::from,
    );
    let mut found: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.extension()
                        .is_some_and(|e| e == "png" || e == "jpg" || e == "webp")
                })
                .filter_map(|p| {
                    Some((
                        p.file_name()?.to_string_lossy().into_owned(),
                        std::fs::read(&p).ok()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    if found.is_empty() {
        let img = ImageBuffer::from_fn(640, 480, |x, y| {
            Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        });
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png)
            .expect("encode");
        found.push(("generated-640x480.png".to_owned(), out.into_inner()));
    }
    found.sort();
    found
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0 / f64::from(RUNS)
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn main() {
    println!(
        "{:<24} {:>9} {:>9} {:>9} {:>9} {:>10} {:>9}",
        "photo", "decode", "texture", "mesh+glb", "total", "glb bytes", "tris"
    );
    for (name, bytes) in photos() {
        let (mut decode, mut texture, mut model) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
        let mut out = (0, 0);
        for _ in 0..RUNS {
            let t = Instant::now();
            let image = relief::decode(&bytes, image::Limits::default()).expect("decodes");
            decode += t.elapsed();
            let t = Instant::now();
            let (tex, mime) = relief::texture(&image).expect("texture");
            texture += t.elapsed();
            let t = Instant::now();
            let rgba = image.to_rgba8();
            let glb = relief::generate_glb(&rgba, (&tex, mime), None);
            model += t.elapsed();
            let (w, h) = mesh::grid_size(rgba.width(), rgba.height(), None);
            out = (glb.len(), mesh::triangles_for(w, h));
        }
        println!(
            "{:<24} {:>7.1}ms {:>7.1}ms {:>7.1}ms {:>7.1}ms {:>10} {:>9}",
            name,
            ms(decode),
            ms(texture),
            ms(model),
            ms(decode + texture + model),
            out.0,
            out.1
        );
    }
    if let Some(kib) = peak_rss_kib() {
        println!("peak resident memory: {:.1} MiB", kib as f64 / 1024.0);
    }
}
