// Preload (`node --require ./loopback.cjs`): sends the unmodified Azure SDKs to the local
// emulator and nowhere else.
//
// - dns.lookup (and dns.promises.lookup) answer 127.0.0.1 for Azure host names (public,
//   China and US Gov clouds: login, management, *.vault, *.azurecr, ...) and localhost;
//   every other name fails with ENOTFOUND, so nothing can reach the internet by name.
// - net.Socket#connect (the one place every http, https, tls and fetch connection goes
//   through) refuses any non-loopback address (e.g. IMDS 169.254.169.254) and remaps the
//   ports the SDKs use, 443 and 80, to the emulator's ports taken from AZCMK_CONNECT_TO
//   (":443:127.0.0.1:N,:80:127.0.0.1:N+1", printed by `azcmk emulator start`).
//   TLS still sees the real host name (SNI and certificate check use it), so the emulator's
//   certificate is verified against the CA in NODE_EXTRA_CA_CERTS.
"use strict";
const dns = require("node:dns");
const net = require("node:net");

const AZURE_SUFFIXES = [
  "azure.com", "azure.net", "windows.net", "microsoftonline.com", "azurecr.io", "azure-api.net",
  "chinacloudapi.cn", "azure.cn", "azurecr.cn", "microsoftonline.cn", "partner.microsoftonline.cn",
  "usgovcloudapi.net", "microsoftonline.us", "azurecr.us",
];

function isAzure(host) {
  if (typeof host !== "string") return false;
  const h = host.toLowerCase().replace(/\.$/, "");
  if (h === "localhost") return true;
  return AZURE_SUFFIXES.some((s) => h === s || h.endsWith("." + s));
}

function isLoopback(addr) {
  return addr === "::1" || /^127\./.test(addr) || addr === "::ffff:127.0.0.1";
}

// ":443:127.0.0.1:8443,:80:127.0.0.1:8444" -> {443: 8443, 80: 8444}
const portMap = {};
for (const part of (process.env.AZCMK_CONNECT_TO || "").split(",")) {
  const m = /^[^:]*:(\d+):([^:]+):(\d+)$/.exec(part.trim());
  if (m && isLoopback(m[2])) portMap[m[1]] = Number(m[3]);
}
if (!portMap["443"]) {
  throw new Error("loopback.cjs: AZCMK_CONNECT_TO must map :443 to the emulator (eval the lines of `azcmk emulator start`)");
}

function refused(host) {
  const err = new Error(`loopback.cjs: refusing to resolve ${host} (not an Azure host name; only the local emulator is reachable)`);
  err.code = "ENOTFOUND";
  err.hostname = host;
  return err;
}

const origLookup = dns.lookup;
function lookup(hostname, options, callback) {
  if (typeof options === "function") { callback = options; options = {}; }
  if (typeof options === "number") options = { family: options };
  options = options || {};
  if (net.isIP(hostname)) return origLookup.call(dns, hostname, options, callback);
  if (!isAzure(hostname)) {
    const err = refused(hostname);
    process.nextTick(() => callback(err));
    return {};
  }
  process.nextTick(() => {
    if (options.all) callback(null, [{ address: "127.0.0.1", family: 4 }]);
    else callback(null, "127.0.0.1", 4);
  });
  return {};
}
dns.lookup = lookup;
dns.promises.lookup = (hostname, options) => new Promise((resolve, reject) => {
  lookup(hostname, options, (err, address, family) => {
    if (err) reject(err);
    else resolve(Array.isArray(address) ? address : { address, family });
  });
});

if (typeof net._normalizeArgs !== "function") {
  // Node's own argument normaliser (net.js exports it for http's agent); fail loudly if a
  // future Node drops it rather than let a connection slip past the hook.
  throw new Error("loopback.cjs: this Node has no net._normalizeArgs; the connect hook cannot run");
}
const origConnect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function (...args) {
  let normalized = args[0];
  if (!(Array.isArray(normalized) && Object.getOwnPropertySymbols(normalized).length)) {
    normalized = net._normalizeArgs(args); // marked as normalized (a symbol) by node
  }
  const options = normalized[0];
  if (options && options.path == null) {
    const host = options.host || "localhost";
    if (net.isIP(host) && !isLoopback(host)) {
      const err = new Error(`loopback.cjs: refusing to connect to ${host} (only loopback is allowed)`);
      err.code = "ECONNREFUSED";
      process.nextTick(() => this.destroy(err));
      return this;
    }
    if (!isAzure(host) && !isLoopback(host)) {
      process.nextTick(() => this.destroy(refused(host)));
      return this;
    }
    const mapped = portMap[String(options.port)];
    if (mapped) options.port = mapped;
  }
  return origConnect.call(this, normalized);
};
