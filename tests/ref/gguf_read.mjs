// Reads a GGUF file with @huggingface/gguf (an independent parser) and prints JSON:
// {version, tensorDataOffset, metadata: {key: {type, subType, value}}, tensors: [...]}.
// 64-bit integers (BigInt) are printed as {"$big": "<decimal>"} so no precision is lost.
import { gguf } from "@huggingface/gguf";

const path = process.argv[2];
if (!path) {
  console.error("usage: gguf_read.mjs FILE");
  process.exit(2);
}

const out = await gguf(path, { allowLocalFile: true, typedMetadata: true });

const big = (v) => (typeof v === "bigint" ? { $big: v.toString() } : v);
const replacer = (_key, v) => big(v);

const metadata = {};
for (const [key, entry] of Object.entries(out.typedMetadata)) {
  if (key === "version" || key === "tensor_count" || key === "kv_count") continue;
  metadata[key] = { type: entry.type, subType: entry.subType ?? null, value: entry.value };
}
const tensors = out.tensorInfos.map((t) => ({
  name: t.name,
  n_dims: t.n_dims,
  shape: t.shape.map((d) => d.toString()),
  dtype: t.dtype,
  offset: t.offset.toString(),
}));

process.stdout.write(
  JSON.stringify(
    {
      version: out.metadata.version,
      tensor_count: out.metadata.tensor_count,
      kv_count: out.metadata.kv_count,
      tensorDataOffset: out.tensorDataOffset.toString(),
      metadata,
      tensors,
    },
    replacer,
  ),
);
