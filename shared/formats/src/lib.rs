//! A stored model (a glTF 2.0 binary) in the other formats people use. The GLB is read once into
//! a [`Scene`] of world-space triangles (`scene.rs`), which each writer turns into its format:
//! binary STL for printers (`stl.rs`), a zip of OBJ, MTL and textures for editors (`obj.rs`), a
//! USDZ package for AR Quick Look (`usdz.rs`). Pure functions over bytes, apart from everything
//! else so that they are compiled for speed like the generator's geometry.

pub mod obj;
pub mod scene;
pub mod stl;
pub mod usdz;

pub use scene::{FormatError, Scene};
