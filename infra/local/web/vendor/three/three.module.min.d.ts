// For tsc alone (scripts/typecheck_web.sh): the viewer is not part of the API contract, so
// three.js is typed `any` rather than checked from its minified source.
declare const THREE: any;
export = THREE;
