"""Writes tests/fixtures/fal/multi_mesh.glb: a small glTF binary standing in for what FAL.AI's
image-to-3D models return, with what a single-mesh relief does not have.

- Two meshes on two nodes: "Body" (a translated box) and its child "Arm" (a triangular prism
  with its own translation, rotation and non-uniform scale), so world positions need the
  nested transforms. The two solids do not touch.
- The box's mesh has two primitives of different materials: its four sides (u16 indices,
  NORMAL and TEXCOORD_0) and its two caps (u32 indices, NORMAL only: their material has no
  texture). Together they close the box; the prism is one primitive (u16 indices, NORMAL and
  TEXCOORD_0). Every face has its own vertices, so there are seams at every edge.
- Three materials with metallic-roughness factors: "Checker" (a PNG baseColorTexture and a
  metallicRoughnessTexture), "Stripes" (a PNG baseColorTexture under KHR_texture_transform,
  offset and scale; the extension is in extensionsUsed only) and "Plain" (a baseColorFactor
  only).
- Triangles wind counter-clockwise seen from outside (checked here against each face's
  outward direction); every accessor has min and max.

The PNGs are written with stored (uncompressed) deflate blocks, so the bytes do not depend on
the zlib build; the output is the same on every run and machine. It passes the Khronos
glTF-Validator with no issue at all (tests/formats/check_glb.mjs).

Usage: python3 tests/formats/make_fal_fixture.py [OUT.glb]
(default: tests/fixtures/fal/multi_mesh.glb beside this repository's tests/).
"""

import json
import os
import struct
import sys
import zlib

# glTF constants.
FLOAT, UNSIGNED_SHORT, UNSIGNED_INT = 5126, 5123, 5125
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963
LINEAR, LINEAR_MIPMAP_LINEAR, NEAREST, REPEAT = 9729, 9987, 9728, 10497


# --- PNG -------------------------------------------------------------------------------------


def png(width, height, pixel):
    """An 8-bit RGB PNG of pixel(x, y) -> (r, g, b), its IDAT stored uncompressed."""
    raw = bytearray()
    for y in range(height):
        raw.append(0)  # filter: none
        for x in range(width):
            raw.extend(pixel(x, y))
    raw = bytes(raw)
    # zlib stream: header (deflate, 32 KiB window, no dictionary, fastest), stored blocks of
    # at most 65,535 bytes, then the Adler-32 of the data.
    stream = bytearray(b"\x78\x01")
    blocks = [raw[i : i + 65535] for i in range(0, len(raw), 65535)] or [b""]
    for n, block in enumerate(blocks):
        stream.append(1 if n == len(blocks) - 1 else 0)
        stream += struct.pack("<HH", len(block), len(block) ^ 0xFFFF)
        stream += block
    stream += struct.pack(">I", zlib.adler32(raw))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", bytes(stream)) + chunk(b"IEND", b"")


def checker(x, y):
    """32x32: 4x4 cells of 8 px, orange and teal, with a dark 1 px grid line."""
    if x % 8 == 0 or y % 8 == 0:
        return (40, 40, 48)
    return (235, 140, 40) if (x // 8 + y // 8) % 2 == 0 else (30, 160, 170)


def stripes(x, y):
    """32x32: diagonal stripes, 4 px wide, cream and plum."""
    return (240, 230, 200) if ((x + y) // 4) % 2 == 0 else (120, 50, 110)


def metal_rough(x, y):
    """16x16: glTF reads roughness from G and metalness from B; R is unused (0).
    Left half rough dielectric, right half smooth metal, a gradient down the rows."""
    if x < 8:
        return (0, 200 - 4 * y, 0)
    return (0, 40 + 4 * y, 255)


# --- geometry --------------------------------------------------------------------------------


def sub(a, b):
    return [a[i] - b[i] for i in range(3)]


def cross(a, b):
    return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]


def dot(a, b):
    return sum(a[i] * b[i] for i in range(3))


class Part:
    """Per-face vertices: positions, normals, uvs and triangle indices."""

    def __init__(self, centre):
        self.centre = centre  # a point inside the solid, to check winding against
        self.positions, self.normals, self.uvs, self.indices = [], [], [], []

    def face(self, corners, normal, uvs):
        """A planar polygon, corners counter-clockwise seen from outside (along normal)."""
        middle = [sum(c[i] for c in corners) / len(corners) for i in range(3)]
        assert dot(sub(middle, self.centre), normal) > 0, "the normal points inwards"
        base = len(self.positions)
        for k in range(1, len(corners) - 1):
            a, b, c = corners[0], corners[k], corners[k + 1]
            winding = cross(sub(b, a), sub(c, a))
            assert dot(winding, normal) > 0, f"face {corners} winds clockwise"
            self.indices += [base, base + k, base + k + 1]
        self.positions += corners
        self.normals += [normal] * len(corners)
        self.uvs += uvs


QUAD_UV = [[0.0, 1.0], [1.0, 1.0], [1.0, 0.0], [0.0, 0.0]]


def box(half):
    """The box's sides (+X, -X, +Z, -Z) and caps (+Y, -Y) as two parts, centred on 0."""
    hx, hy, hz = half
    sides, caps = Part([0, 0, 0]), Part([0, 0, 0])
    # Each quad: bottom-left, bottom-right, top-right, top-left seen from outside.
    sides.face([[hx, -hy, hz], [hx, -hy, -hz], [hx, hy, -hz], [hx, hy, hz]], [1.0, 0.0, 0.0], QUAD_UV)
    sides.face([[-hx, -hy, -hz], [-hx, -hy, hz], [-hx, hy, hz], [-hx, hy, -hz]], [-1.0, 0.0, 0.0], QUAD_UV)
    sides.face([[-hx, -hy, hz], [hx, -hy, hz], [hx, hy, hz], [-hx, hy, hz]], [0.0, 0.0, 1.0], QUAD_UV)
    sides.face([[hx, -hy, -hz], [-hx, -hy, -hz], [-hx, hy, -hz], [hx, hy, -hz]], [0.0, 0.0, -1.0], QUAD_UV)
    caps.face([[-hx, hy, hz], [hx, hy, hz], [hx, hy, -hz], [-hx, hy, -hz]], [0.0, 1.0, 0.0], QUAD_UV)
    caps.face([[-hx, -hy, -hz], [hx, -hy, -hz], [hx, -hy, hz], [-hx, -hy, hz]], [0.0, -1.0, 0.0], QUAD_UV)
    return sides, caps


def prism(a, b, hz):
    """A right triangular prism: the triangle (0,0), (a,0), (0,b) in XY, from z=-hz to z=hz.
    With a:b = 3:4 the slanted face's normal is (4/5, 3/5, 0)."""
    c = (a * a + b * b) ** 0.5
    part = Part([a / 3, b / 3, 0.0])
    p0, p1, p2 = [0.0, 0.0], [a, 0.0], [0.0, b]

    def at(p, z):
        return [p[0], p[1], z]

    part.face([at(p0, hz), at(p1, hz), at(p2, hz)], [0.0, 0.0, 1.0], [[0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    part.face([at(p0, -hz), at(p2, -hz), at(p1, -hz)], [0.0, 0.0, -1.0], [[1.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    # Bottom (y = 0), back (x = 0) and the slanted face.
    part.face([at(p0, -hz), at(p1, -hz), at(p1, hz), at(p0, hz)], [0.0, -1.0, 0.0], QUAD_UV)
    part.face([at(p0, -hz), at(p0, hz), at(p2, hz), at(p2, -hz)], [-1.0, 0.0, 0.0], QUAD_UV)
    part.face([at(p1, hz), at(p1, -hz), at(p2, -hz), at(p2, hz)], [b / c, a / c, 0.0], QUAD_UV)
    return part


# --- glTF ------------------------------------------------------------------------------------


def f32(value):
    """value as the float32 the buffer holds, so min and max match the data exactly."""
    return struct.unpack("<f", struct.pack("<f", value))[0]


class Builder:
    def __init__(self):
        self.bin = bytearray()
        self.buffer_views, self.accessors = [], []

    def view(self, data, target=None):
        while len(self.bin) % 4:
            self.bin.append(0)
        view = {"buffer": 0, "byteOffset": len(self.bin), "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        self.bin += data
        self.buffer_views.append(view)
        return len(self.buffer_views) - 1

    def vectors(self, rows):
        """A float VEC2 or VEC3 accessor of rows."""
        width = len(rows[0])
        values = [[f32(v) for v in row] for row in rows]
        data = b"".join(struct.pack(f"<{width}f", *row) for row in values)
        self.accessors.append(
            {
                "bufferView": self.view(data, ARRAY_BUFFER),
                "componentType": FLOAT,
                "count": len(rows),
                "type": f"VEC{width}",
                "min": [min(row[i] for row in values) for i in range(width)],
                "max": [max(row[i] for row in values) for i in range(width)],
            }
        )
        return len(self.accessors) - 1

    def indices(self, indices, wide):
        fmt, kind = ("I", UNSIGNED_INT) if wide else ("H", UNSIGNED_SHORT)
        data = struct.pack(f"<{len(indices)}{fmt}", *indices)
        self.accessors.append(
            {
                "bufferView": self.view(data, ELEMENT_ARRAY_BUFFER),
                "componentType": kind,
                "count": len(indices),
                "type": "SCALAR",
                "min": [min(indices)],
                "max": [max(indices)],
            }
        )
        return len(self.accessors) - 1

    def primitive(self, part, material, wide, uvs=True):
        attributes = {"POSITION": self.vectors(part.positions), "NORMAL": self.vectors(part.normals)}
        if uvs:
            attributes["TEXCOORD_0"] = self.vectors(part.uvs)
        return {
            "attributes": attributes,
            "indices": self.indices(part.indices, wide),
            "material": material,
            "mode": 4,
        }


def build():
    b = Builder()
    sides, caps = box([0.5, 0.25, 0.375])
    arm = prism(0.375, 0.5, 0.25)
    meshes = [
        {
            "name": "BodyMesh",
            "primitives": [
                b.primitive(sides, material=0, wide=False),
                # The caps' material has no texture: no TEXCOORD_0 (it would be unused).
                b.primitive(caps, material=2, wide=True, uvs=False),
            ],
        },
        {"name": "ArmMesh", "primitives": [b.primitive(arm, material=1, wide=False)]},
    ]
    images = []
    for name, data in (
        ("checker", png(32, 32, checker)),
        ("stripes", png(32, 32, stripes)),
        ("metal_rough", png(16, 16, metal_rough)),
    ):
        images.append({"name": name, "bufferView": b.view(data), "mimeType": "image/png"})
    while len(b.bin) % 4:
        b.bin.append(0)
    gltf = {
        "asset": {"version": "2.0", "generator": "image2model tests/formats/make_fal_fixture.py"},
        "extensionsUsed": ["KHR_texture_transform"],
        "scene": 0,
        "scenes": [{"name": "Scene", "nodes": [0]}],
        "nodes": [
            {"name": "Body", "mesh": 0, "translation": [-0.25, 0.25, 0.0], "children": [1]},
            {
                "name": "Arm",
                "mesh": 1,
                "translation": [1.0, 0.0, 0.0],
                # About +Y by 2*atan(0.6/0.8), about 73.7 degrees; unit length.
                "rotation": [0.0, 0.6, 0.0, 0.8],
                "scale": [1.0, 1.5, 0.5],
            },
        ],
        "meshes": meshes,
        "materials": [
            {
                "name": "Checker",
                "pbrMetallicRoughness": {
                    "baseColorTexture": {"index": 0},
                    "metallicFactor": 1.0,
                    "roughnessFactor": 1.0,
                    "metallicRoughnessTexture": {"index": 2},
                },
            },
            {
                "name": "Stripes",
                "pbrMetallicRoughness": {
                    "baseColorTexture": {
                        "index": 1,
                        "extensions": {"KHR_texture_transform": {"offset": [0.25, 0.5], "scale": [2.0, 3.0]}},
                    },
                    "metallicFactor": 0.0,
                    "roughnessFactor": 0.6,
                },
            },
            {
                "name": "Plain",
                "pbrMetallicRoughness": {
                    "baseColorFactor": [0.8, 0.2, 0.1, 1.0],
                    "metallicFactor": 0.25,
                    "roughnessFactor": 0.4,
                },
            },
        ],
        "textures": [
            {"sampler": 0, "source": 0},
            {"sampler": 0, "source": 1},
            {"sampler": 1, "source": 2},
        ],
        "samplers": [
            {"magFilter": LINEAR, "minFilter": LINEAR_MIPMAP_LINEAR, "wrapS": REPEAT, "wrapT": REPEAT},
            {"magFilter": NEAREST, "minFilter": LINEAR, "wrapS": REPEAT, "wrapT": REPEAT},
        ],
        "images": images,
        "accessors": b.accessors,
        "bufferViews": b.buffer_views,
        "buffers": [{"byteLength": len(b.bin)}],
    }
    text = json.dumps(gltf, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 4)
    body = struct.pack("<I4s", len(text), b"JSON") + text + struct.pack("<I4s", len(b.bin), b"BIN\x00") + bytes(b.bin)
    return struct.pack("<4sII", b"glTF", 2, 12 + len(body)) + body


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default = os.path.join(here, "..", "fixtures", "fal", "multi_mesh.glb")
    out = os.path.normpath(sys.argv[1] if len(sys.argv) > 1 else default)
    glb = build()
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "wb") as file:
        file.write(glb)
    print(f"{out}: {len(glb)} bytes")


if __name__ == "__main__":
    main()
