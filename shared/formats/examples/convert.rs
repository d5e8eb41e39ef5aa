//! A photo through the built-in generator and out in every format, for a person to check with
//! other tools: `cargo run -p image2model-formats --example convert -- PHOTO OUT_DIR` (a GLB
//! instead of the photo is converted as it is).

use image2model_formats::{Scene, obj, stl, usdz};

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(photo), Some(out)) = (args.next(), args.next()) else {
        eprintln!("usage: convert PHOTO OUT_DIR");
        std::process::exit(2);
    };
    let bytes = std::fs::read(&photo).expect("the photo");
    let glb = if bytes.starts_with(b"glTF") {
        bytes
    } else {
        let decoded =
            image2model_relief::decode(&bytes, image::Limits::default()).expect("decodes");
        let texture = image2model_relief::texture(&decoded).expect("texture");
        image2model_relief::generate_glb(&decoded.to_rgba8(), (&texture.0, texture.1), None)
    };
    let out = std::path::Path::new(&out);
    std::fs::create_dir_all(out).expect("the output directory");
    std::fs::write(out.join("model.glb"), &glb).expect("write the GLB");
    let scene = Scene::from_glb(&glb).expect("the GLB reads back");
    let stl = stl::encode(&scene).expect("an STL");
    std::fs::write(out.join("model.stl"), &stl).expect("write the STL");
    let obj = obj::encode(&scene).expect("an OBJ zip");
    std::fs::write(out.join("model.obj.zip"), &obj).expect("write the OBJ zip");
    let usdz = usdz::encode(&scene).expect("a USDZ");
    std::fs::write(out.join("model.usdz"), &usdz).expect("write the USDZ");
    println!(
        "glb {} bytes, stl {} bytes, obj zip {} bytes, usdz {} bytes",
        glb.len(),
        stl.len(),
        obj.len(),
        usdz.len()
    );
}
