// For tsc alone (scripts/typecheck_web.sh): three.js is typed `any` (see three.module.min.d.ts).
export const OrbitControls: any;
