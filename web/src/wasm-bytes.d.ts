// The build embeds dist/kernels.wasm (esbuild's binary loader): its bytes.
declare module "*.wasm" {
  const bytes: Uint8Array<ArrayBuffer>;
  export default bytes;
}
