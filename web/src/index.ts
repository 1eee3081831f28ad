// progs-web: decode progressive progs streams (docs/FORMAT.md) in the browser and in Node.
export { FormatError } from "./errors.js";
export { crc32 } from "./bytes.js";
export { FORMAT_VERSION, MAGIC, scan, scanChunks, headerLength, headChunkTable, tagName } from "./container.js";
export type { Chunk, ScanResult } from "./container.js";
export { decodeHeader } from "./header.js";
export type { Header, Grid, GeneratorConfig, Tensor } from "./header.js";
export { StreamDecoder, decode, MAX_ANCHORS, setLevelMemoryLimit } from "./decoder.js";
export type { ChunkInProgress, ContextParams, DecodedLevel, DecodeResult, PendingLevel } from "./decoder.js";
export { ParallelStreamDecoder, serveContext } from "./parallel.js";
export type { ContextThread, FromContext, ToContext } from "./parallel.js";
export { toSplats, splatsToPly, sphereCameras } from "./splats.js";
export type { Splats } from "./splats.js";
export { scaleBin, scaleBinBySearch, SCALE_BINS, SCALE_THRESHOLDS } from "./context.js";
export { frequencies, RangeDecoder } from "./rangecoder.js";
export { useWasm, kernels as wasmKernels } from "./wasm.js";
export { exp, softplus, tanh } from "./exactmath.js";
export { NeuralGaussians } from "./gaussians.js";
export type { ViewGaussians } from "./gaussians.js";
