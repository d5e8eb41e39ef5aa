//! glTF 2.0 binary (GLB) encoding of a textured mesh: one node, one mesh, one primitive, one
//! material whose base colour is the embedded photo.

use super::mesh::Mesh;
use serde_json::json;

const GLB_MAGIC: u32 = 0x4654_6C67; // "glTF"
const CHUNK_JSON: u32 = 0x4E4F_534A; // "JSON"
const CHUNK_BIN: u32 = 0x004E_4942; // "BIN\0"
const ARRAY_BUFFER: u32 = 34962;
const ELEMENT_ARRAY_BUFFER: u32 = 34963;
const FLOAT: u32 = 5126;
const UNSIGNED_INT: u32 = 5125;

/// Appends `bytes` to the binary buffer at a 4-byte aligned offset; returns (offset, length).
fn push_aligned(bin: &mut Vec<u8>, bytes: &[u8]) -> (usize, usize) {
    while !bin.len().is_multiple_of(4) {
        bin.push(0);
    }
    let offset = bin.len();
    bin.extend_from_slice(bytes);
    (offset, bytes.len())
}

fn floats<const N: usize>(items: &[[f32; N]]) -> Vec<u8> {
    items
        .iter()
        .flat_map(|v| v.iter().flat_map(|f| f.to_le_bytes()))
        .collect()
}

/// Encodes `mesh` with `texture` (image bytes of `mime`) as a GLB file.
pub fn encode(mesh: &Mesh, texture: &[u8], mime: &str) -> Vec<u8> {
    let mut bin = Vec::new();
    let positions = push_aligned(&mut bin, &floats(&mesh.positions));
    let normals = push_aligned(&mut bin, &floats(&mesh.normals));
    let uvs = push_aligned(&mut bin, &floats(&mesh.uvs));
    let index_bytes: Vec<u8> = mesh.indices.iter().flat_map(|i| i.to_le_bytes()).collect();
    let indices = push_aligned(&mut bin, &index_bytes);
    let image = push_aligned(&mut bin, texture);
    while !bin.len().is_multiple_of(4) {
        bin.push(0);
    }
    let (min, max) = mesh.bounds();
    let count = mesh.positions.len();
    let view = |(offset, length): (usize, usize), target: Option<u32>| {
        let mut v = json!({"buffer": 0, "byteOffset": offset, "byteLength": length});
        if let Some(target) = target {
            v["target"] = json!(target);
        }
        v
    };
    let document = json!({
        "asset": {"version": "2.0", "generator": "image2model built-in depth relief"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": "relief"}],
        "meshes": [{"name": "relief", "primitives": [{
            "attributes": {"POSITION": 0, "NORMAL": 1, "TEXCOORD_0": 2},
            "indices": 3,
            "material": 0,
            "mode": 4
        }]}],
        "materials": [{
            "name": "photo",
            "pbrMetallicRoughness": {
                "baseColorTexture": {"index": 0},
                "metallicFactor": 0.0,
                "roughnessFactor": 0.9
            }
        }],
        "textures": [{"source": 0, "sampler": 0}],
        "samplers": [{"magFilter": 9729, "minFilter": 9987, "wrapS": 33071, "wrapT": 33071}],
        "images": [{"bufferView": 4, "mimeType": mime}],
        "accessors": [
            {"bufferView": 0, "componentType": FLOAT, "count": count, "type": "VEC3", "min": min, "max": max},
            {"bufferView": 1, "componentType": FLOAT, "count": count, "type": "VEC3"},
            {"bufferView": 2, "componentType": FLOAT, "count": count, "type": "VEC2"},
            {"bufferView": 3, "componentType": UNSIGNED_INT, "count": mesh.indices.len(), "type": "SCALAR"}
        ],
        "bufferViews": [
            view(positions, Some(ARRAY_BUFFER)),
            view(normals, Some(ARRAY_BUFFER)),
            view(uvs, Some(ARRAY_BUFFER)),
            view(indices, Some(ELEMENT_ARRAY_BUFFER)),
            view(image, None)
        ],
        "buffers": [{"byteLength": bin.len()}]
    });
    let mut json_chunk = document.to_string().into_bytes();
    while !json_chunk.len().is_multiple_of(4) {
        json_chunk.push(b' ');
    }
    let total = 12 + 8 + json_chunk.len() + 8 + bin.len();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&GLB_MAGIC.to_le_bytes());
    out.extend_from_slice(&2u32.to_le_bytes());
    out.extend_from_slice(&(total as u32).to_le_bytes());
    out.extend_from_slice(&(json_chunk.len() as u32).to_le_bytes());
    out.extend_from_slice(&CHUNK_JSON.to_le_bytes());
    out.extend_from_slice(&json_chunk);
    out.extend_from_slice(&(bin.len() as u32).to_le_bytes());
    out.extend_from_slice(&CHUNK_BIN.to_le_bytes());
    out.extend_from_slice(&bin);
    out
}
