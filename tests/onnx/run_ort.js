// Run an ONNX model in onnxruntime (the npm package onnxruntime-node, installed into
// tests/onnx/node_modules by scripts/setup_onnxruntime.sh) for tests/test_onnx_ort.c:
//
//   node run_ort.js MODEL.onnx INPUTS.json OUTPUTS.json
//
// INPUTS.json: {"<name>": {"type": "float32"|"float64"|"int32"|"int64", "dims": [..],
// "data": [row-major values]}, ...}. OUTPUTS.json gets every output of the model in the same
// form, plus "__names__": {"inputs": [...], "outputs": [...]}, the session's names in the
// model's order. Numbers are written in JavaScript's shortest round-trip form, so float32
// and float64 values come back exactly. Any failure: a message on stderr and exit status 1.
'use strict';
const fs = require('fs');

const arrays = {
  float32: Float32Array,
  float64: Float64Array,
  int32: Int32Array,
  int64: BigInt64Array,
};

async function main() {
  const [model, inputs, outputs] = process.argv.slice(2);
  if (!outputs) throw new Error('usage: node run_ort.js MODEL.onnx INPUTS.json OUTPUTS.json');
  const ort = require('onnxruntime-node');
  const spec = JSON.parse(fs.readFileSync(inputs, 'utf8'));
  const session = await ort.InferenceSession.create(model);
  const feeds = {};
  for (const [name, t] of Object.entries(spec)) {
    const Arr = arrays[t.type];
    if (!Arr) throw new Error(`input ${name}: unknown type ${t.type}`);
    const data = t.type === 'int64' ? Arr.from(t.data, (v) => BigInt(v)) : Arr.from(t.data);
    feeds[name] = new ort.Tensor(t.type, data, t.dims);
  }
  const result = await session.run(feeds);
  const out = { __names__: { inputs: session.inputNames, outputs: session.outputNames } };
  for (const [name, t] of Object.entries(result))
    out[name] = { type: t.type, dims: Array.from(t.dims), data: Array.from(t.data, Number) };
  fs.writeFileSync(outputs, JSON.stringify(out));
}

main().catch((e) => {
  console.error(`run_ort.js: ${e && e.message ? e.message : e}`);
  process.exit(1);
});
