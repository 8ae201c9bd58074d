// Reads an MCAP the way Foxglove does: @mcap/core's indexed reader (zstd chunks through @foxglove/wasm-zstd),
// the ros2msg schema parsed by @foxglove/rosmsg and every cdr message decoded by @foxglove/rosmsg2-serialization.
// Prints JSON: the header profile and, per topic, the schema, encodings, message count and the decoded values a
// test compares (tests/test_view.py). Exits non-zero on anything Foxglove could not show.
import { readFile } from "node:fs/promises";
import { McapIndexedReader } from "@mcap/core";
import { parse } from "@foxglove/rosmsg";
import { MessageReader } from "@foxglove/rosmsg2-serialization";
import zstd from "@foxglove/wasm-zstd";

const bytes = new Uint8Array(await readFile(process.argv[2]));
const readable = {
  size: async () => BigInt(bytes.length),
  read: async (offset, length) => bytes.subarray(Number(offset), Number(offset + length)),
};
await zstd.isLoaded;
const reader = await McapIndexedReader.Initialize({
  readable,
  decompressHandlers: { zstd: (data, size) => zstd.decompress(data, Number(size)) },
});
const decoders = new Map();
for (const [id, schema] of reader.schemasById) {
  if (schema.encoding !== "ros2msg") throw new Error(`schema ${schema.name} is ${schema.encoding}, not ros2msg`);
  decoders.set(id, new MessageReader(parse(new TextDecoder().decode(schema.data), { ros2: true })));
}
const topics = {};
for await (const message of reader.readMessages({ validateCrcs: true })) {
  const channel = reader.channelsById.get(message.channelId);
  if (channel.messageEncoding !== "cdr") throw new Error(`${channel.topic} is ${channel.messageEncoding}, not cdr`);
  const decoder = decoders.get(channel.schemaId);
  const msg = decoder.readMessage(message.data);
  if (decoder.lastReadHadTrailingBytes()) throw new Error(`${channel.topic}: message longer than its schema`);
  const topic = (topics[channel.topic] ??= {
    schema: reader.schemasById.get(channel.schemaId).name, encoding: channel.messageEncoding, count: 0, values: [],
  });
  topic.count += 1;
  if (msg.encoding !== undefined && msg.data instanceof Uint8Array) {  // sensor_msgs/Image
    const stamp = msg.header.stamp;
    topic.values.push([msg.width, msg.height, msg.step, msg.encoding, msg.data.length, Array.from(msg.data.subarray(0, 6)),
      Number(BigInt(stamp.sec) * 1000000000n + BigInt(stamp.nanosec)) === Number(message.logTime)]);
  } else if (msg.vector !== undefined) {
    topic.values.push([msg.vector.x, msg.vector.y]);
  } else if (typeof msg.data === "number" || typeof msg.data === "string") {
    topic.values.push(msg.data);
  } else {
    topic.values.push(Array.from(msg.data));
  }
}
console.log(JSON.stringify({ profile: reader.header.profile, topics }));
