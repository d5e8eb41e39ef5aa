"""Checks USDZ packages with Pixar's USD (usd-core): every validator of the UsdValidation
registry, run on the opened stage, reports no error or warning; the package follows AR Quick
Look's rules (root layer first and in crate format, entries stored uncompressed at 64-byte
aligned offsets, textures PNG or JPEG); and the stage has meshes bound to preview materials
that read a texture from inside the package.

Usage: python check_usdz.py MODEL.usdz [MODEL.usdz ...]; prints one line per package and
exits non-zero on the first failure.
"""

import struct
import sys
import zipfile

from pxr import Sdf, Usd, UsdGeom, UsdShade, UsdValidation


def package_rules(path):
    with zipfile.ZipFile(path) as archive:
        entries = archive.infolist()
    assert entries, "an empty package"
    assert entries[0].filename.endswith(".usdc"), f"root layer first, got {entries[0].filename}"
    with open(path, "rb") as raw:
        data = raw.read()
    for entry in entries:
        assert entry.compress_type == zipfile.ZIP_STORED, f"{entry.filename} is compressed"
        name_len, extra_len = struct.unpack_from("<HH", data, entry.header_offset + 26)
        start = entry.header_offset + 30 + name_len + extra_len
        assert start % 64 == 0, f"{entry.filename} starts at {start}, not 64-byte aligned"
        ext = entry.filename.rsplit(".", 1)[-1].lower()
        assert ext in ("usdc", "usda", "usd", "png", "jpg", "jpeg"), f"{entry.filename}: not allowed"
    name_len, extra_len = struct.unpack_from("<HH", data, entries[0].header_offset + 26)
    root = data[entries[0].header_offset + 30 + name_len + extra_len:][:8]
    assert root == b"PXR-USDC", f"the root layer is not crate format: {root!r}"
    return [e.filename for e in entries]


def validators_report(path):
    stage = Usd.Stage.Open(path)
    assert stage, "USD cannot open the package"
    registry = UsdValidation.ValidationRegistry()
    validators = registry.GetOrLoadAllValidators()
    context = UsdValidation.ValidationContext(validators)
    errors = context.Validate(stage)
    problems = [
        f"{e.GetName()}: {e.GetMessage()}"
        for e in errors
        if e.GetType() in (UsdValidation.ValidationErrorType.Error, UsdValidation.ValidationErrorType.Warn)
    ]
    assert not problems, "USD validators: " + "; ".join(problems)
    return stage, len(validators)


def content(stage):
    assert UsdGeom.GetStageUpAxis(stage) == "Y"
    assert UsdGeom.GetStageMetersPerUnit(stage) == 1.0
    default = stage.GetDefaultPrim()
    assert default and default.IsValid(), "no default prim"
    meshes = [UsdGeom.Mesh(p) for p in stage.Traverse() if p.IsA(UsdGeom.Mesh)]
    assert meshes, "no mesh"
    faces = 0
    textures = set()
    for mesh in meshes:
        counts = mesh.GetFaceVertexCountsAttr().Get()
        faces += len(counts)
        assert len(mesh.GetPointsAttr().Get()) > 0
        material, _ = UsdShade.MaterialBindingAPI(mesh.GetPrim()).ComputeBoundMaterial()
        assert material, f"{mesh.GetPath()} has no material"
        for shader in material.GetPrim().GetChildren():
            file = UsdShade.Shader(shader).GetInput("file")
            if file:
                asset = file.Get()
                assert asset.resolvedPath, f"{asset.path} does not resolve inside the package"
                textures.add(asset.path)
    return len(meshes), faces, textures


def main(paths):
    for path in paths:
        entries = package_rules(path)
        stage, validators = validators_report(path)
        meshes, faces, textures = content(stage)
        print(
            f"{path}: {validators} USD validators, 0 errors, 0 warnings; entries {entries}; "
            f"{meshes} meshes, {faces} faces, textures {sorted(textures)}"
        )


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
