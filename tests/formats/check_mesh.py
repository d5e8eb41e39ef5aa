"""Checks our OBJ and STL exports with trimesh (pinned in tests/formats/requirements.txt).

Usage:
  python check_mesh.py obj MODEL.glb MODEL.obj.zip
      The zip is extracted to a temporary folder and model.obj is loaded from there, so its
      materials must resolve through model.mtl to the texture files beside it. Checks:
      - mtl: every map_Kd of model.mtl names an image in the zip that PIL reads.
      - materials: every part trimesh loads (one per `usemtl`) has TextureVisuals with a
        material from model.mtl; a part whose material has a map_Kd carries that image, at
        the file's size, and one texture coordinate per vertex.
      - counts: the OBJ's faces and vertices equal the GLB's, summed over every mesh instance
        the GLB's scene draws (a mesh on two nodes counts twice, as the converter writes it
        twice). Both files are loaded without processing (process=False) so nothing is merged;
        trimesh's OBJ loader keeps one vertex per distinct (v, vt) pair that a face uses, and
        our writer gives each GLB vertex its own v and vt, so the vertices compared are those
        the triangles use (np.unique of the faces on the GLB side). The raw `v`, `vt` and `f`
        line counts are printed too; `v` must equal the GLB's vertex count.
      - parts: each GLB primitive instance has its OBJ part: same faces and vertices, the
        same base-colour texture size (or none on both), Kd equal to the base-colour factor.
      - positions: each part's OBJ vertices are the GLB's in world space (the node transforms,
        nested ones included, applied; Y up, the GLB's units).
      - uvs: each part's OBJ texture coordinates are the GLB's TEXCOORD_0 with V flipped and,
        where the material's baseColorTexture has KHR_texture_transform, that transform
        applied (neither trimesh nor MTL applies it for us).
  python check_mesh.py stl MODEL.stl [--longest-mm 100]
      Loads it (trimesh merges coincident vertices) and checks: watertight, consistent
      winding, positive volume, the longest side of the bounding box equal to --longest-mm
      within 0.01 mm.

Each check prints one line ("ok" or "FAILED"); the exit status is 1 if any failed.
"""

import argparse
import json
import math
import os
import struct
import sys
import tempfile
import zipfile

import numpy as np
import trimesh
from PIL import Image

failures = []


def report(ok, name, detail):
    print(f"{'ok' if ok else 'FAILED'} {name}: {detail}")
    if not ok:
        failures.append(name)


# --- GLB ---------------------------------------------------------------------------------


def glb_json(path):
    with open(path, "rb") as file:
        data = file.read()
    magic, _, _ = struct.unpack_from("<4sII", data, 0)
    length, kind = struct.unpack_from("<I4s", data, 12)
    if magic != b"glTF" or kind != b"JSON":
        sys.exit(f"{path}: not a glTF binary")
    return json.loads(data[20 : 20 + length])


def texture_transforms(gltf):
    """Material name -> the KHR_texture_transform of its baseColorTexture (or None)."""
    out = {}
    for material in gltf.get("materials", []):
        info = material.get("pbrMetallicRoughness", {}).get("baseColorTexture") or {}
        transform = info.get("extensions", {}).get("KHR_texture_transform")
        name = material.get("name")
        if name in out and out[name] != transform:
            out[name] = "ambiguous"
        else:
            out[name] = transform
    return out


def apply_transform(uv_bottom_left, transform):
    """KHR_texture_transform on trimesh-style UVs (origin bottom left): back to glTF's top-left
    origin, offset * rotation * scale, and back."""
    u, v = uv_bottom_left[:, 0], 1.0 - uv_bottom_left[:, 1]
    ox, oy = transform.get("offset", [0.0, 0.0])
    sx, sy = transform.get("scale", [1.0, 1.0])
    r = transform.get("rotation", 0.0)
    c, s = math.cos(r), math.sin(r)
    u2 = c * sx * u + s * sy * v + ox
    v2 = -s * sx * u + c * sy * v + oy
    return np.column_stack([u2, 1.0 - v2])


def glb_parts(path):
    scene = trimesh.load(path, force="scene", process=False)
    transforms = texture_transforms(glb_json(path))
    parts, skipped = [], []
    for node in scene.graph.nodes_geometry:
        matrix, name = scene.graph[node]
        mesh = scene.geometry[name]
        if not isinstance(mesh, trimesh.Trimesh):
            skipped.append(name)
            continue
        material = getattr(mesh.visual, "material", None)
        texture = getattr(material, "baseColorTexture", None)
        factor = getattr(material, "baseColorFactor", None)
        used = np.unique(mesh.faces)
        uv = getattr(mesh.visual, "uv", None)
        transform = transforms.get(getattr(material, "name", None))
        parts.append(
            {
                "name": name,
                "faces": len(mesh.faces),
                "vertices": len(used),
                "all_vertices": len(mesh.vertices),
                "texture": texture.size if texture is not None else None,
                "color": np.array(factor if factor is not None else [255] * 4)[:3].astype(int),
                "positions": trimesh.transformations.transform_points(mesh.vertices[used], matrix),
                "uv": None if uv is None else np.asarray(uv)[used],
                "transform": transform,
            }
        )
    return parts, skipped


# --- OBJ ---------------------------------------------------------------------------------


def mtl_maps(text):
    """newmtl name -> the file its map_Kd names (the last token: options come first)."""
    maps, current = {}, None
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "newmtl":
            current = " ".join(words[1:])
            maps[current] = None
        elif words[0] == "map_Kd" and current is not None:
            maps[current] = words[-1]
    return maps


def check_obj(glb, objzip):
    with tempfile.TemporaryDirectory() as folder:
        with zipfile.ZipFile(objzip) as archive:
            names = archive.namelist()
            archive.extractall(folder)
        if "model.obj" not in names or "model.mtl" not in names:
            report(False, "zip", f"holds {names}, not model.obj and model.mtl")
            return
        obj_path = os.path.join(folder, "model.obj")
        with open(obj_path, encoding="utf-8") as file:
            text = file.read()
        lines = {k: 0 for k in ("v", "vt", "vn", "f", "g", "usemtl")}
        for line in text.splitlines():
            key = line.split(" ", 1)[0]
            if key in lines:
                lines[key] += 1
        with open(os.path.join(folder, "model.mtl"), encoding="utf-8") as file:
            maps = mtl_maps(file.read())

        # mtl: every map_Kd names an image in the zip.
        sizes, bad = {}, []
        for material, texture in maps.items():
            if texture is None:
                continue
            try:
                with Image.open(os.path.join(folder, texture)) as image:
                    sizes[material] = image.size
            except OSError as error:
                bad.append(f"{material}: map_Kd {texture}: {error}")
        report(
            not bad and bool(maps),
            "mtl",
            "; ".join(bad)
            or f"{len(maps)} materials, {len(sizes)} with a map_Kd that reads: "
            + ", ".join(f"{m} -> {maps[m]} {w}x{h}" for m, (w, h) in sizes.items()),
        )

        scene = trimesh.load(obj_path, force="scene", process=False)
        parts, bad = [], []
        for node in scene.graph.nodes_geometry:
            matrix, name = scene.graph[node]
            mesh = scene.geometry[name]
            visual = mesh.visual
            material = getattr(visual, "material", None)
            material_name = getattr(material, "name", None)
            if not isinstance(visual, trimesh.visual.TextureVisuals) or material_name not in maps:
                bad.append(f"{name}: {type(visual).__name__}, material {material_name!r} not from model.mtl")
                continue
            image = getattr(material, "image", None)
            uv = visual.uv
            want = sizes.get(material_name)
            if maps[material_name] is not None:
                if image is None or image.size != want:
                    got = None if image is None else image.size
                    shown = "x".join(map(str, want)) if want else "unreadable"
                    bad.append(f"{name}: material {material_name} has image {got}, its map_Kd {maps[material_name]} is {shown}")
                if uv is None or len(uv) != len(mesh.vertices):
                    bad.append(f"{name}: {0 if uv is None else len(uv)} uvs for {len(mesh.vertices)} vertices")
            parts.append(
                {
                    "name": name if name == material_name else f"{name} ({material_name})",
                    "faces": len(mesh.faces),
                    "vertices": len(mesh.vertices),
                    "texture": image.size if image is not None else None,
                    "color": np.asarray(material.diffuse)[:3].astype(int),
                    "positions": trimesh.transformations.transform_points(mesh.vertices, matrix),
                    "uv": None if uv is None else np.asarray(uv),
                }
            )
        textured = sum(p["texture"] is not None for p in parts)
        report(
            not bad and bool(parts),
            "materials",
            "; ".join(bad)
            or f"{len(parts)} parts, each a TextureVisuals with its model.mtl material; "
            f"{textured} textured, each with its map_Kd image and one uv per vertex",
        )

    ours, skipped = glb_parts(glb)
    gf, gv = sum(p["faces"] for p in ours), sum(p["vertices"] for p in ours)
    gall = sum(p["all_vertices"] for p in ours)
    of, ov = sum(p["faces"] for p in parts), sum(p["vertices"] for p in parts)
    report(
        (of, ov) == (gf, gv) and lines["f"] == gf and lines["v"] == gall,
        "counts",
        f"OBJ {of} faces, {ov} vertices in {len(parts)} parts (lines: {lines['v']} v, {lines['vt']} vt, "
        f"{lines['vn']} vn, {lines['f']} f, {lines['g']} g, {lines['usemtl']} usemtl); "
        f"GLB {gf} faces, {gv} vertices used ({gall} in all) in {len(ours)} mesh instances"
        + (f" (not triangles, left out: {skipped})" if skipped else ""),
    )

    # Pair each GLB part with the OBJ part of the same size nearest to it in space.
    pairs, unpaired, left = [], [], list(parts)
    # Coordinates are written as float32: allow a relative error of 1e-5 of the largest one.
    scale = max([1e-9] + [float(np.abs(p["positions"]).max()) for p in ours if p["faces"]])
    for part in ours:
        candidates = [o for o in left if (o["faces"], o["vertices"]) == (part["faces"], part["vertices"])]
        if not candidates:
            unpaired.append(f"{part['name']} ({part['faces']} faces, {part['vertices']} vertices)")
            continue
        best = min(candidates, key=lambda o: np.abs(o["positions"] - part["positions"]).max())
        left.remove(best)
        pairs.append((part, best))
    bad = [f"no OBJ part for GLB {u}" for u in unpaired] + [f"OBJ part {o['name']} has no GLB part" for o in left]
    for g, o in pairs:
        if g["texture"] != o["texture"]:
            bad.append(f"{g['name']}: texture {g['texture']} in the GLB, {o['texture']} in {o['name']}")
        if np.abs(g["color"] - o["color"]).max() > 1:
            bad.append(f"{g['name']}: base colour {g['color'].tolist()}, {o['name']} Kd {o['color'].tolist()}")
    report(
        not bad,
        "parts",
        "; ".join(bad)
        or ", ".join(f"{g['name']} = {o['name']}" for g, o in pairs)
        + ": same faces, vertices, texture size and colour",
    )

    tolerance = 1e-5 * scale
    errors = {o["name"]: np.abs(o["positions"] - g["positions"]).max() for g, o in pairs}
    worst = max(errors.values(), default=0.0)
    report(
        worst <= tolerance,
        "positions",
        f"OBJ vertices are the GLB's in world space, largest difference {worst:.3g} "
        f"(allowed {tolerance:.3g})"
        + ("" if worst <= tolerance else f"; by part: { {k: float(f'{v:.3g}') for k, v in errors.items()} }"),
    )

    bad, compared, transformed = [], 0, 0
    for g, o in pairs:
        if g["uv"] is None or o["uv"] is None:
            if (g["uv"] is None) != (o["uv"] is None) and g["texture"] is not None:
                bad.append(f"{g['name']}: uvs in {'the OBJ' if g['uv'] is None else 'the GLB'} only")
            continue
        want = g["uv"]
        if g["transform"] == "ambiguous":
            bad.append(f"{g['name']}: materials share its name with different texture transforms")
            continue
        if g["transform"]:
            want = apply_transform(want, g["transform"])
            transformed += 1
        compared += 1
        error = np.abs(o["uv"] - want).max()
        if error > 1e-4:
            why = " (KHR_texture_transform " + json.dumps(g["transform"]) + " not applied?)" if g["transform"] else ""
            if g["transform"] and np.abs(o["uv"] - g["uv"]).max() <= 1e-4:
                why = f" (they are the raw TEXCOORD_0: KHR_texture_transform {json.dumps(g['transform'])} was not applied)"
            bad.append(f"{g['name']} / {o['name']}: uvs differ by up to {error:.3g}{why}")
    report(
        not bad,
        "uvs",
        "; ".join(bad)
        or f"{compared} parts' uvs are the GLB's with V flipped ({transformed} with KHR_texture_transform applied)",
    )


# --- STL ---------------------------------------------------------------------------------


def check_stl(path, longest_mm):
    with open(path, "rb") as file:
        head = file.read(84)
    declared = struct.unpack_from("<I", head, 80)[0] if len(head) == 84 else None
    mesh = trimesh.load(path, force="mesh")
    extents = mesh.extents
    print(
        f"{path}: {len(mesh.faces)} faces (header: {declared}), {len(mesh.vertices)} vertices after merging, "
        f"volume {mesh.volume:.1f} mm3, extents {' x '.join(f'{e:.3f}' for e in extents)} mm, "
        f"lowest corner {' '.join(f'{c:.3f}' for c in mesh.bounds[0])}"
    )
    report(declared == len(mesh.faces), "facets", f"{len(mesh.faces)} loaded, {declared} in the header")
    edges = trimesh.grouping.group_rows(mesh.edges_sorted, require_count=2)
    report(
        mesh.is_watertight,
        "watertight",
        f"every edge is shared by exactly two faces"
        if mesh.is_watertight
        else f"{len(mesh.edges_sorted) - 2 * len(edges)} of {len(mesh.edges_sorted)} face edges are not in a pair",
    )
    report(
        mesh.is_winding_consistent,
        "winding",
        "consistent: each shared edge is walked in opposite directions by its two faces"
        if mesh.is_winding_consistent
        else "inconsistent: some neighbouring faces wind the same way along their shared edge",
    )
    report(mesh.volume > 0, "volume", f"{mesh.volume:.3f} mm3 (positive: the faces point outwards)")
    longest = float(extents.max())
    report(
        abs(longest - longest_mm) <= 0.01,
        "size",
        f"longest side {longest:.4f} mm, wanted {longest_mm} mm within 0.01",
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    obj = commands.add_parser("obj", help="an OBJ zip against the GLB it was made from")
    obj.add_argument("glb")
    obj.add_argument("objzip")
    stl = commands.add_parser("stl", help="a binary STL: closed, outward, to size")
    stl.add_argument("stl")
    stl.add_argument("--longest-mm", type=float, default=100.0)
    args = parser.parse_args()
    if args.command == "obj":
        check_obj(args.glb, args.objzip)
    else:
        check_stl(args.stl, args.longest_mm)
    if failures:
        sys.exit(f"FAILED: {', '.join(failures)}")
    print("all checks passed")


if __name__ == "__main__":
    main()
