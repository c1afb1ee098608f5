// MQTT.js (npm "mqtt") against Ferry.
//
// usage: node client.js URL VERSION ALIASMAX
//   URL       mqtt://127.0.0.1:1883 or ws://127.0.0.1:8083/mqtt
//   VERSION   4 (3.1.1) or 5
//   ALIASMAX  topic aliases the subscriber accepts (MQTT 5; 0: none)
//
// A subscriber on js/# receives five QoS 1 messages from a publisher and
// checks topics, payloads and order. Prints OK on success.
const mqtt = require("mqtt");

const [url, version, aliasMax] = process.argv.slice(2);
const protocolVersion = Number(version);
const opts = { protocolVersion, connectTimeout: 5000, reconnectPeriod: 0 };
const topics = ["js/a", "js/b", "js/a", "js/c", "js/b"];
const got = [];

function fail(msg) {
  console.log("FAIL: " + msg);
  process.exit(1);
}
setTimeout(() => fail("timed out; got " + JSON.stringify(got)), 10000).unref();

const subOpts = { ...opts, clientId: "js-sub-" + version };
if (protocolVersion === 5 && Number(aliasMax) > 0) {
  subOpts.properties = { topicAliasMaximum: Number(aliasMax) };
}
const sub = mqtt.connect(url, subOpts);
sub.on("error", (e) => fail("subscriber: " + e.message));
sub.on("message", (topic, payload) => {
  got.push(topic + " " + payload.toString());
  if (got.length === topics.length) {
    const want = topics.map((t, i) => t + " " + i);
    if (JSON.stringify(got) !== JSON.stringify(want)) {
      fail("got " + JSON.stringify(got) + ", want " + JSON.stringify(want));
    }
    console.log("OK");
    sub.end(false, () => process.exit(0));
  }
});
sub.on("connect", () => {
  sub.subscribe("js/#", { qos: 1 }, (err) => {
    if (err) fail("subscribe: " + err.message);
    const pub = mqtt.connect(url, { ...opts, clientId: "js-pub-" + version });
    pub.on("error", (e) => fail("publisher: " + e.message));
    pub.on("connect", async () => {
      for (let i = 0; i < topics.length; i++) {
        await pub.publishAsync(topics[i], String(i), { qos: 1 });
      }
      pub.end();
    });
  });
});
