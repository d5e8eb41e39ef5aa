// For tsc alone (scripts/typecheck_web.sh): three.js is typed `any` (see three.module.min.d.ts),
// but for the callbacks the page passes to `load`.
export class GLTFLoader {
  load(url: string, onLoad: (gltf: { scene: any }) => void, onProgress?: unknown, onError?: (err: any) => void): void;
}
