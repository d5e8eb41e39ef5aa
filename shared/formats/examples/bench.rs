//! How long each conversion takes and how much memory it needs, for photos made into models by
//! the built-in relief at its standard detail and at its finest (`face_limit` 800,000):
//! `cargo run --release -p image2model-formats --example bench -- PHOTO...` (what
//! `scripts/bench_formats.sh` runs on the shared photos). Memory is the peak of heap bytes
//! allocated during one conversion above what was allocated before it (the GLB itself), counted
//! by a wrapping allocator; the ratio to the GLB's size is what the service's budget check
//! (`MEMORY_PER_GLB_BYTE` in `shared/src/app/convert.rs`) must stay above.

use image2model_formats::{FormatError, Scene, obj, stl, usdz};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// The system allocator, counting the bytes allocated now and their peak.
struct Counting;

static NOW: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = NOW.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        NOW.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

type Encoder = fn(&Scene) -> Result<Vec<u8>, FormatError>;

fn main() {
    let photos: Vec<String> = std::env::args().skip(1).collect();
    if photos.is_empty() {
        eprintln!("usage: bench PHOTO...");
        std::process::exit(2);
    }
    let formats: [(&str, Encoder); 3] = [
        ("usdz", usdz::encode),
        ("obj", obj::encode),
        ("stl", stl::encode),
    ];
    println!(
        "photo | detail | faces | GLB bytes | format | bytes | ms | peak heap MiB | peak / GLB"
    );
    for photo in &photos {
        let bytes = std::fs::read(photo).expect("the photo");
        let decoded =
            image2model_relief::decode(&bytes, image::Limits::default()).expect("decodes");
        let texture = image2model_relief::texture(&decoded).expect("texture");
        let name = std::path::Path::new(photo)
            .file_name()
            .map_or(photo.clone(), |n| n.to_string_lossy().into_owned());
        for (detail, limit) in [("standard", None), ("finest", Some(800_000))] {
            let glb = image2model_relief::generate_glb(
                &decoded.to_rgba8(),
                (&texture.0, texture.1),
                limit,
            );
            let faces = Scene::from_glb(&glb).expect("reads").triangles().count();
            for (format, encode) in formats {
                let before = NOW.load(Ordering::Relaxed);
                PEAK.store(before, Ordering::Relaxed);
                let started = Instant::now();
                let scene = Scene::from_glb(&glb).expect("reads");
                let out = encode(&scene).expect("converts");
                drop(scene);
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                let peak = PEAK.load(Ordering::Relaxed) - before;
                println!(
                    "{name} | {detail} | {faces} | {} | {format} | {} | {ms:.0} | {:.1} | {:.2}",
                    glb.len(),
                    out.len(),
                    peak as f64 / 1048576.0,
                    peak as f64 / glb.len() as f64
                );
            }
        }
    }
}
